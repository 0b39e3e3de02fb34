/* The exports page: follow each queued or running export (GET its status URL, a JSON answer
 * checked like the download) and turn its row into a download link when the file is ready, without
 * a reload. Screen readers hear "ready" or "failed" through the page's live region. Without
 * JavaScript the page's "Refresh progress" link shows the same.
 */
(function () {
  "use strict";

  var announcer = document.getElementById("export-announcer");
  var FIRST_DELAY_MS = 700;
  var MAX_DELAY_MS = 5000;
  var MAX_TRIES = 2000;

  function announce(text) {
    if (announcer) { announcer.textContent = text; }
  }

  function showProgress(row, data) {
    var bar = row.querySelector("progress");
    var text = row.querySelector("[data-progress-text]");
    if (bar) { bar.value = data.percent; bar.textContent = data.percent + "%"; }
    if (text) { text.textContent = data.percent + "% (" + data.progress + " of " + data.total + ")"; }
  }

  function showDone(row, data) {
    var file = row.querySelector("[data-file]");
    var link = document.createElement("a");
    link.href = data.download_url;
    link.textContent = "Download";
    var purpose = document.createElement("span");  // which export, for screen reader link lists
    purpose.className = "visually-hidden";
    purpose.textContent = " " + row.getAttribute("data-name");
    link.appendChild(purpose);
    var hash = document.createElement("small");
    hash.className = "text-body-secondary";
    hash.textContent = "SHA-256 " + data.sha256.slice(0, 16) + "…";
    file.replaceChildren(link, document.createElement("br"), hash);
    row.querySelector("[data-rows]").textContent = data.rows === null ? "—" : String(data.rows);
  }

  function finish(row, data) {
    var progress = row.querySelector("[data-progress]");
    if (progress) { progress.remove(); }
    row.querySelector("[data-error]").textContent = data.error || "";
    var name = row.getAttribute("data-name");
    if (data.download_url) {
      showDone(row, data);
      announce(name + ": ready to download.");
    } else {
      announce(name + ": " + data.label + (data.error ? ". " + data.error : "."));
    }
  }

  function follow(row) {
    var url = row.getAttribute("data-status-url");
    var delay = FIRST_DELAY_MS;
    var tries = 0;
    function again() {
      tries += 1;
      if (tries < MAX_TRIES) { window.setTimeout(tick, delay); }
      delay = Math.min(MAX_DELAY_MS, Math.round(delay * 1.25));
    }
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 403 || response.status === 404) { return { gone: true }; }
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (data === null) { again(); return; }
          if (data.gone) {
            row.querySelector("[data-error]").textContent = "Progress is not available any more; reload the page.";
            return;
          }
          row.setAttribute("data-status", data.status);
          row.querySelector("[data-status-label]").textContent = data.label;
          if (data.active) {
            showProgress(row, data);
            again();
          } else {
            finish(row, data);
          }
        })
        .catch(again);
    }
    window.setTimeout(tick, delay);
  }

  document.querySelectorAll("tr[data-export-job]").forEach(function (row) {
    var status = row.getAttribute("data-status");
    if (status === "queued" || status === "running") { follow(row); }
  });
})();
