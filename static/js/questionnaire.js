/* Progressive enhancement of the patient's questionnaire (templates/pro_measures/patient).
 *
 * Visual analogue scales: without JavaScript the patient types a number. With it, the number
 * input is hidden and a slider shown instead. An untouched slider is no answer: only moving it
 * (finger, mouse or keys) copies its value into the number input that is submitted, and only then
 * does its thumb appear; the value is shown beside it and given to screen readers as
 * aria-valuetext.
 *
 * A page shown with errors moves the focus to the error summary, so that it is read first.
 */
(function () {
  "use strict";

  function enhance(vas) {
    var numberBox = vas.querySelector("[data-vas-number]");
    var number = numberBox.querySelector("input");
    var sliderBox = vas.querySelector("[data-vas-slider]");
    var range = sliderBox.querySelector("input[type=range]");
    var shown = sliderBox.querySelector("[data-vas-value]");
    var min = Number(range.min);
    var max = Number(range.max);
    var saved = number.value.trim();
    if (saved !== "" && !(/^\d+$/.test(saved) && Number(saved) >= min && Number(saved) <= max)) {
      return; // a value the slider cannot show: keep the number input and its error
    }

    function show(touched) {
      if (touched) {
        shown.textContent = vas.dataset.textValue.replace("__VALUE__", range.value);
        range.setAttribute("aria-valuetext", vas.dataset.textValuetext.replace("__VALUE__", range.value));
        range.classList.remove("untouched");
      } else {
        shown.textContent = vas.dataset.textUnanswered;
        range.setAttribute("aria-valuetext", vas.dataset.textUnanswered);
        range.classList.add("untouched");
      }
    }

    function touch() {
      number.value = range.value;
      show(true);
    }

    if (saved !== "") {
      range.value = saved;
      show(true);
    } else {
      show(false);
    }
    range.addEventListener("input", touch);
    range.addEventListener("change", touch);
    // A tap on the slider where its (hidden) thumb already is changes nothing, but is an answer.
    range.addEventListener("pointerup", touch);
    sliderBox.hidden = false;
    numberBox.hidden = true;
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-vas]"), enhance);

  var errors = document.getElementById("page-errors");
  if (errors) {
    errors.focus();
  }
})();
