"""Prediction jobs: async submit + poll, sync predict, history, cancel."""
