/* A job's page follows its progress: it polls the job's small JSON once a second until the job
   has finished, then shows the download or the error (an export's file is fetched at once).
   Leaving the page does not stop the job. */
(function () {
  "use strict";
  var card = document.querySelector("[data-job-url]");
  if (!card) { return; }
  var url = card.getAttribute("data-job-url");
  function field(name) { return card.querySelector('[data-field="' + name + '"]'); }
  function show(job) {
    field("state_label").textContent = job.state_label;
    field("stage_label").textContent = job.finished ? "" : job.stage_label;
    var pill = field("state_label");
    pill.className = "pill " + (job.state === "done" ? "ok" :
      (job.state === "failed" || job.state === "cancelled") ? "bad" : "warn");
    var bar = card.querySelector("progress");
    if (job.percent !== null) {
      bar.value = job.percent;
      field("percent").textContent = "· " + job.percent + "%";
    }
    if (job.total) {
      field("counts").textContent = job.done + " / " + job.total;
    }
    if (job.error) {
      field("error").textContent = job.error;
      field("error").hidden = false;
    }
    if (job.download_url) {
      field("download_url").setAttribute("href", job.download_url);
      field("result_name").textContent = job.result_name || "";
      field("download").hidden = false;
    }
    var cancel = field("cancel");
    if (cancel && job.finished) { cancel.hidden = true; }
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(poll, 5000); return; }
        show(job);
        if (job.finished) {
          if (job.kind === "export" && job.download_url) {
            // An export the person waited for: the file comes by itself (the link stays).
            window.location.assign(job.download_url);
            return;
          }
          // Reload once for what only the server renders (the list of unprintable names).
          if (!card.hasAttribute("data-finished")) { window.location.reload(); }
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (card.querySelector('[data-field="cancel"]')) {
    setTimeout(poll, 500);
  } else {
    card.setAttribute("data-finished", "1");
  }
})();
