/* Live eligibility feedback on the checklist form.
 *
 * On every change of an answer the form (unsaved) is posted to its preview URL, which answers
 * with the protocol's verdict as HTML; that replaces the panel beside the form, and its one-line
 * summary is announced to screen readers. Nothing is saved. Without JavaScript the panel shows
 * the saved result, refreshed when the form is saved. While a verdict is on its way the panel is
 * aria-busy.
 */
(function () {
  "use strict";

  var form = document.querySelector("form[data-eligibility-preview]");
  var panel = document.getElementById("eligibility-panel");
  if (!form || !panel || !window.fetch) {
    return;
  }
  var announce = document.getElementById("eligibility-announce");
  var url = form.getAttribute("data-eligibility-preview");
  var latest = 0; // the number of the latest request: answers can arrive out of order
  var inFlight = 0;
  var timer = null;
  var submitting = false;

  function setBusy() {
    panel.setAttribute("aria-busy", timer !== null || inFlight > 0 ? "true" : "false");
  }

  function refresh() {
    timer = null;
    if (submitting) {
      setBusy();
      return;
    }
    var ticket = ++latest;
    var token = form.querySelector("input[name=csrfmiddlewaretoken]");
    inFlight += 1;
    setBusy();
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "", "X-Requested-With": "fetch" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("preview failed: " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (ticket !== latest) {
          return;
        }
        panel.innerHTML = html;
        var result = panel.querySelector("[data-summary]");
        if (announce && result) {
          announce.textContent = result.getAttribute("data-summary");
        }
      })
      .catch(function () {
        // Keep the last verdict; the panel is refreshed on the next change or on saving.
      })
      .then(function () {
        inFlight -= 1;
        setBusy();
      });
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, delay);
    setBusy();
  }

  function isAnswer(target) {
    return target && target.name && target.name !== "reason" && target.name !== "csrfmiddlewaretoken";
  }

  form.addEventListener("change", function (event) {
    if (isAnswer(event.target)) {
      schedule(100);
    }
  });
  form.addEventListener("input", function (event) {
    if (isAnswer(event.target) && event.target.type === "text") {
      schedule(400); // typing a partial date: wait for a pause
    }
  });
  form.addEventListener("submit", function () {
    // Saving shows the saved verdict; a preview started now would only be cut off.
    submitting = true;
    window.clearTimeout(timer);
    timer = null;
    setBusy();
  });
  setBusy();
})();
