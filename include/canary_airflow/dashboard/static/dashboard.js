// Reload a page about a running rollout every few seconds (the server says how often, or 0),
// skipping reloads while the tab is hidden. No other script runs on the dashboard.
(() => {
  const seconds = Number(document.body.dataset.refreshSeconds || 0);
  if (!seconds) return;
  setInterval(() => {
    if (document.visibilityState === "visible") window.location.reload();
  }, seconds * 1000);
})();
