// Adverse event form: show the seriousness criteria only while "Serious" is ticked. Without
// JavaScript they are always shown and the server says which answer is missing.
(function () {
  "use strict";
  var box = document.getElementById("seriousness-criteria");
  if (!box) return;
  var serious = document.getElementById(box.dataset.shownWith);
  if (!serious) return;
  function update() {
    var hasError = box.querySelector(".is-invalid, .invalid-feedback") !== null;
    var ticked = box.querySelector("input:checked") !== null;
    box.hidden = !serious.checked && !hasError && !ticked;
  }
  serious.addEventListener("change", update);
  update();
})();
