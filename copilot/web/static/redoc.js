// ReDoc for /redoc (no inline script: the page's CSP forbids it). Search runs in a blob: worker,
// which the CSP does not allow: it is off. ReDoc's "powered by" logo comes from a CDN: the CSP blocks
// it and ReDoc hides it.
window.addEventListener("load", function () {
  Redoc.init("/openapi.json", { disableSearch: true }, document.getElementById("redoc"));
});
