// Copies the browser builds of the npm dependencies into static/vendor, which the app serves
// (no CDN). Run by `make` (web-assets) before the server or the tests start.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "static", "vendor");
const files = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "chart.umd.min.js": "node_modules/chart.js/dist/chart.umd.min.js",
};

mkdirSync(vendor, { recursive: true });
for (const [target, source] of Object.entries(files)) {
  copyFileSync(join(here, source), join(vendor, target));
}
// The Makefile's stamp: written last, so a failed copy leaves the build to be redone.
writeFileSync(join(vendor, ".built"), new Date().toISOString() + "\n");
console.log(`web assets: ${Object.keys(files).join(", ")} -> ${vendor}`);
