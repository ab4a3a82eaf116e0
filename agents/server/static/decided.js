// The decided page: follow the decision's execution job live (GET its status URL twice a
// second until it is done or failed). Text only (textContent): nothing from the server is
// parsed as HTML.
(function () {
  "use strict";
  var box = document.getElementById("execution");
  if (!box) return;
  var url = box.getAttribute("data-status-url");
  var list = document.getElementById("execution-steps");
  var state = document.getElementById("execution-state");
  var result = document.getElementById("execution-outcome");
  var failures = 0;

  function details(d) {
    var parts = [];
    Object.keys(d || {}).forEach(function (k) {
      var v = d[k];
      if (v === null || v === "" || (Array.isArray(v) && v.length === 0)) return;
      parts.push(k + " " + (typeof v === "object" ? JSON.stringify(v) : v));
    });
    return parts.length ? " (" + parts.join(", ") + ")" : "";
  }

  function render(job) {
    state.textContent = job.state;
    state.className = "status s-" + job.state;
    for (var i = list.children.length; i < job.steps.length; i++) {
      var s = job.steps[i];
      var li = document.createElement("li");
      li.textContent = s.at.slice(11, 19) + " " + s.step + details(s.detail);
      list.appendChild(li);
    }
    if (job.state === "done" && job.outcome) {
      result.textContent = (job.outcome.status || "done") + ": " + (job.outcome.message || "");
    } else if (job.state === "failed" && job.error) {
      result.textContent = "The decision is recorded, but what follows it failed: " +
        job.error.message + " " + (job.error.hint || "");
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (job) {
        failures = 0;
        render(job);
        if (job.state === "queued" || job.state === "running") setTimeout(poll, 500);
      })
      .catch(function () {
        failures += 1;
        if (failures < 20) setTimeout(poll, 2000);
      });
  }
  poll();
})();
