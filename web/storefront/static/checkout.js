// Checkout: show only the fields of the chosen channel (pickup store or delivery address).
(function () {
  "use strict";
  var form = document.getElementById("checkout-form");
  if (!form) { return; }
  function show() {
    var chosen = form.querySelector("input[name=channel]:checked");
    form.querySelectorAll("fieldset[data-channel]").forEach(function (set) {
      set.hidden = chosen !== null && set.getAttribute("data-channel") !== chosen.value;
    });
  }
  form.querySelectorAll("input[name=channel]").forEach(function (radio) { radio.addEventListener("change", show); });
  show();
}());
