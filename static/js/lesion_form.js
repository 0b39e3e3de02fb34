/* The lesion form: the digit and phalanx questions only for "Hand: finger or thumb", and no
 * middle phalanx for the thumb. The server gives the same rules as messages without JavaScript.
 */
(function () {
  "use strict";

  var form = document.querySelector("form[data-lesion-form]");
  if (!form) {
    return;
  }
  var site = form.querySelector("[name=anatomical_site]");
  var digit = form.querySelector("[name=digit]");
  var phalanx = form.querySelector("[name=phalanx]");
  if (!site || !digit || !phalanx) {
    return;
  }
  var wrappers = [digit, phalanx].map(function (field) {
    return document.getElementById("div_" + field.id) || field.parentNode;
  });
  var middle = phalanx.querySelector("option[value=middle]");

  function refresh() {
    var finger = site.value === "hand_digit";
    wrappers.forEach(function (wrapper) {
      wrapper.hidden = !finger;
    });
    if (!finger) {
      digit.value = "";
      phalanx.value = "";
    }
    if (middle) {
      var thumb = digit.value === "thumb";
      middle.disabled = thumb;
      if (thumb && phalanx.value === "middle") {
        phalanx.value = "";
      }
    }
  }

  site.addEventListener("change", refresh);
  digit.addEventListener("change", refresh);
  refresh();
})();
