// The web interface's own script (no inline scripts: the pages' CSP allows only this origin's
// files). Progressive: every page works without it; it adds the upload progress bar, the copy
// button, confirmations, the CSRF header on htmx requests and the analytics charts.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

// htmx requests that change something carry the token as a header (flask-wtf reads X-CSRFToken).
document.addEventListener("htmx:configRequest", (event) => {
  event.detail.headers["X-CSRFToken"] = csrfToken();
});

// Upload with a progress bar: the same form posted by XMLHttpRequest, whose upload events report
// progress. The server answers a redirect (followed here) or the page with the form's errors.
function enhanceUpload(form) {
  const bar = form.querySelector("progress");
  const state = form.querySelector(".upload-state");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.hidden = false;
      bar.value = Math.round((e.loaded / e.total) * 100);
      state.textContent = `Uploading… ${bar.value} %`;
    });
    xhr.upload.addEventListener("load", () => {
      bar.value = 100;
      state.textContent = "Uploaded; storing and starting validation…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.status < 400) {
        window.location.assign(xhr.responseURL);
        return;
      }
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const errors = page.querySelector(".errors, .error-message");
      state.textContent = errors ? errors.textContent.trim().replace(/\s+/g, " ") : `Upload failed (${xhr.status})`;
      state.classList.add("field-error");
      bar.hidden = true;
    });
    xhr.addEventListener("error", () => {
      state.textContent = "Upload failed: the connection was lost.";
      bar.hidden = true;
    });
    state.classList.remove("field-error");
    state.textContent = "Uploading…";
    xhr.send(new FormData(form));
  });
}

function enhanceCopy(button) {
  button.addEventListener("click", async () => {
    const input = document.querySelector(button.dataset.copy);
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      document.execCommand("copy"); // plain http outside localhost has no Clipboard API
    }
    button.textContent = "Copied";
  });
}

function enhanceConfirm(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

const STATUS_COLOURS = {
  succeeded: "#2e7d32",
  failed: "#c62828",
  cancelled: "#757575",
  expired: "#ef6c00",
  queued: "#1565c0",
  running: "#6a1b9a",
};

function drawCharts(data) {
  if (typeof Chart === "undefined") return;
  const days = data.daily.map((d) => d.date);
  const common = { responsive: true, maintainAspectRatio: false, animation: false };
  new Chart(document.getElementById("chart-daily"), {
    type: "bar",
    data: {
      labels: days,
      datasets: [
        { label: "failed", data: data.daily.map((d) => d.failed), backgroundColor: STATUS_COLOURS.failed },
        { label: "other outcomes", data: data.daily.map((d) => d.total - d.failed), backgroundColor: STATUS_COLOURS.succeeded },
      ],
    },
    options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const statuses = Object.keys(data.by_status);
  new Chart(document.getElementById("chart-status"), {
    type: "bar",
    data: {
      labels: statuses,
      datasets: [{ label: "jobs", data: statuses.map((s) => data.by_status[s]), backgroundColor: statuses.map((s) => STATUS_COLOURS[s]) }],
    },
    options: { ...common, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const timings = ["inference", "queue", "total"];
  new Chart(document.getElementById("chart-latency"), {
    type: "bar",
    data: {
      labels: timings,
      datasets: ["p50", "p95", "p99"].map((p, i) => ({
        label: p,
        data: timings.map((t) => data.latency_ms[t][p]),
        backgroundColor: ["#90caf9", "#1e88e5", "#0d47a1"][i],
      })),
    },
    options: { ...common, scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
  });
  const percent = (v) => (v === null ? null : Math.round(v * 1000) / 10);
  new Chart(document.getElementById("chart-rates"), {
    type: "bar",
    data: {
      labels: ["success rate", "cache-hit rate"],
      datasets: [{ label: "%", data: [percent(data.success_rate), percent(data.cache_hit_rate)], backgroundColor: ["#2e7d32", "#1565c0"] }],
    },
    options: { ...common, indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { min: 0, max: 100 } } },
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-upload]").forEach(enhanceUpload);
  document.querySelectorAll("button[data-copy]").forEach(enhanceCopy);
  document.querySelectorAll("form[data-confirm]").forEach(enhanceConfirm);
  const analytics = document.getElementById("analytics-data");
  if (analytics) drawCharts(JSON.parse(analytics.textContent));
});
