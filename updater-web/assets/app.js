// The only script of the console: feeds the progress bar of a running
// operation from its server-sent events, then reloads the page to show the
// result. Everything else works without it (forms post, pages reload).
(function () {
  "use strict";
  var box = document.querySelector("[data-events]");
  if (!box || !window.EventSource) { return; }
  var bar = box.querySelector("progress");
  function field(name) { return box.querySelector('[data-field="' + name + '"]'); }
  function show(state) {
    if (typeof state.percent === "number") {
      bar.value = state.percent;
      bar.textContent = state.percent + "%";
      field("percent").textContent = state.percent + "%";
    }
    if (state.step) { field("step").textContent = state.step; }
    if (state.message) { field("message").textContent = state.message; }
    if (state.status) {
      field("status").textContent = state.status;
      box.setAttribute("data-status", state.status);
    }
  }
  var source = new EventSource(box.getAttribute("data-events"));
  source.addEventListener("state", function (e) { show(JSON.parse(e.data)); });
  source.addEventListener("progress", function (e) { show(JSON.parse(e.data)); });
  source.addEventListener("done", function (e) {
    var final = JSON.parse(e.data);
    show(final);
    source.close();
    box.setAttribute("data-done", final.status);
    window.setTimeout(function () { window.location.reload(); }, 1500);
  });
}());
