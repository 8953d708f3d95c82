// Starts Swagger UI on the docs page from the container's data attributes: a file, not an inline script, so the
// page's Content-Security-Policy (script-src 'self') runs it.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui-container");
  var config = {url: container.dataset.specUrl, dom_id: "#swagger-ui-container"};
  Object.assign(config, JSON.parse(container.dataset.config));
  window.ui = SwaggerUIBundle(config);
});
