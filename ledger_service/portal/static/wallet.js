// Sign the sign-in message with a browser wallet (window.ethereum, EIP-1193 personal_sign), if one is
// present. Without a wallet the page works as it is: paste a signature made elsewhere.
(function () {
  var button = document.getElementById("wallet-sign");
  if (!button || !window.ethereum) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    var message = document.getElementById("message").value;
    var address = document.getElementById("address").value;
    window.ethereum.request({ method: "eth_requestAccounts" }).then(function () {
      return window.ethereum.request({ method: "personal_sign", params: [message, address] });
    }).then(function (signature) {
      document.getElementById("signature").value = signature;
      document.getElementById("sign-in").submit();
    }).catch(function (err) {
      document.getElementById("wallet-error").textContent = "The wallet did not sign: " + (err.message || err);
    });
  });
})();
