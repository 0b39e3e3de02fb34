/* The visit's lesion table: copy the operator and device into every row, and show the STS dose
 * of what is in the table now against the session cap while typing.
 *
 * Nothing here is needed to save: without JavaScript, empty row operators and devices take the
 * table-wide values on the server, and the saved total is shown under the table. The service
 * enforces every limit whatever this script shows.
 */
(function () {
  "use strict";

  var form = document.getElementById("visit-lesion-form");
  if (!form) {
    return;
  }
  var rows = form.querySelectorAll("tbody tr[data-row]");

  var copy = form.querySelector("[data-copy-to-rows]");
  if (copy) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      ["operator", "device"].forEach(function (name) {
        var source = document.getElementById("id_table-" + name);
        if (!source || !source.value.trim()) {
          return;
        }
        rows.forEach(function (row) {
          var target = row.querySelector("input[name$='-" + name + "']");
          if (target && !target.disabled && !target.value.trim()) {
            target.value = source.value.trim();
          }
        });
      });
    });
  }

  var output = document.getElementById("entered-total");
  var cap = parseFloat(form.getAttribute("data-dose-cap"));
  if (!output || isNaN(cap)) {
    return;
  }

  function enteredDose() {
    var total = 0;
    rows.forEach(function (row) {
      var volume = row.querySelector("input[name$='-volume_ml']");
      var concentration = row.querySelector("select[name$='-concentration_mg_per_ml']");
      if (!volume || !concentration) {
        return;
      }
      var ml = parseFloat(volume.value);
      var mgPerMl = parseFloat(concentration.value);
      if (!isNaN(ml) && !isNaN(mgPerMl) && ml > 0) {
        total += ml * mgPerMl;
      }
    });
    return Math.round(total * 100) / 100;
  }

  function refresh() {
    var total = enteredDose();
    var over = total > cap;
    output.textContent =
      "In the table now (not saved yet): " + total.toFixed(2) + " mg of at most " + cap + " mg" +
      (over ? " - over the session limit: saving will be refused." : ".");
    output.classList.toggle("text-danger", over);
    output.classList.toggle("fw-semibold", over);
  }

  form.addEventListener("input", function (event) {
    if (event.target.name && /-(volume_ml|concentration_mg_per_ml)$/.test(event.target.name)) {
      refresh();
    }
  });
  form.addEventListener("change", function (event) {
    if (event.target.name && /-concentration_mg_per_ml$/.test(event.target.name)) {
      refresh();
    }
  });
})();
