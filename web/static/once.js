// A form marked data-submit-once (a registration, a refund, the cash-up, a hand-over) is sent once per click: its
// submit buttons are disabled while the request is under way, and enabled again when the page is shown from the
// back/forward cache.
(function () {
  "use strict";
  var onceForms = document.querySelectorAll("form[data-submit-once]");
  function submitButtons(form, disabled) {
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = disabled; });
  }
  onceForms.forEach(function (form) {
    form.addEventListener("submit", function () { submitButtons(form, true); });
  });
  window.addEventListener("pageshow", function () {
    onceForms.forEach(function (form) { submitButtons(form, false); });
  });
}());
