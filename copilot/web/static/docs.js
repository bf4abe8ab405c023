// Swagger UI for /docs (no inline script: the page's CSP forbids it). "Try it out" from a logged-in
// browser sends the session's CSRF token, as the app's own pages do.
window.addEventListener("load", function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (req) {
      if (meta && meta.content) req.headers["X-CSRF-Token"] = meta.content;
      return req;
    },
  });
});
