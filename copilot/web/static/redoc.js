// ReDoc for /redoc (no inline script: the page's CSP forbids it).
window.addEventListener("load", function () {
  Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
});
