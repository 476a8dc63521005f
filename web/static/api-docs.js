// Starts Swagger UI on /api/docs (a file, not an inline script: the site's CSP allows only 'self').
// validatorUrl null: Swagger UI would otherwise send the spec to an online validator.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.specUrl, dom_id: "#swagger-ui", validatorUrl: null,
                                deepLinking: true, presets: [SwaggerUIBundle.presets.apis] });
});
