// Stripe Elements: the publishable key and the PaymentIntent's client secret come from data- attributes.
(function () {
  "use strict";
  var form = document.getElementById("stripe-pay");
  if (!form || typeof Stripe === "undefined") { return; }
  var message = document.getElementById("payment-message");
  var button = document.getElementById("pay-button");
  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements({ clientSecret: form.dataset.clientSecret, locale: "zh" });
  var target = document.getElementById("payment-element");
  target.textContent = "";
  var payment = elements.create("payment");
  payment.on("ready", function () { button.disabled = false; });
  payment.mount(target);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    message.hidden = true;
    stripe.confirmPayment({ elements: elements, confirmParams: { return_url: form.dataset.returnUrl } })
      .then(function (result) {
        if (result.error) {
          message.textContent = result.error.message || "支付未完成，请重试。";
          message.hidden = false;
          button.disabled = false;
        }
      });
  });
}());
