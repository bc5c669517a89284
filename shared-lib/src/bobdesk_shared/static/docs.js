// Starts Swagger UI on the document the page names. A file, not an inline script, so the page
// runs under `script-src 'self'`; no validator badge, which an outside service would draw.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
