/* The pay page's only script (docs/security.md): formats what the customer types, nothing else.
   The card number is grouped in fours, the expiry written as MM / YY. It reads no field for any
   other purpose, sends nothing anywhere, and the form works the same without it. */
(function () {
  "use strict";
  function digits(value, max) {
    return value.replace(/\D/g, "").slice(0, max);
  }
  var number = document.getElementById("id_number");
  if (number) {
    number.addEventListener("input", function () {
      var grouped = digits(number.value, 19).replace(/(\d{4})(?=\d)/g, "$1 ");
      if (grouped !== number.value) {
        number.value = grouped;
      }
    });
  }
  var expiry = document.getElementById("id_exp");
  if (expiry) {
    expiry.addEventListener("input", function (event) {
      var typed = digits(expiry.value, 4);
      var deleting = event.inputType && event.inputType.indexOf("delete") === 0;
      var shown = typed.length > 2 || (typed.length === 2 && !deleting) ? typed.slice(0, 2) + " / " + typed.slice(2) : typed;
      if (shown !== expiry.value) {
        expiry.value = shown;
      }
    });
  }
})();
