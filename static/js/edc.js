/* Behaviour shared by every staff page, kept in a file because the Content-Security-Policy allows
   no inline script or style:
   - progress bars carry their width as data-width-percent (set through the CSSOM, which the policy
     allows, instead of a style="" attribute);
   - a "Back" link marked data-history-back goes back in history when there is one (its href is the
     fallback). */
(function () {
  "use strict";

  function widths(root) {
    root.querySelectorAll("[data-width-percent]").forEach(function (bar) {
      var percent = parseFloat(bar.getAttribute("data-width-percent"));
      if (!isNaN(percent)) {
        bar.style.width = Math.max(0, Math.min(100, percent)) + "%";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    widths(document);
    document.querySelectorAll("a[data-history-back]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        if (window.history.length > 1) {
          event.preventDefault();
          window.history.back();
        }
      });
    });
  });
})();
