// Renders the API's own document, served by the same binary. The page's address never
// chooses what is shown (queryConfigEnabled: ?url= would load any document, the way
// Swagger UI pages have been used for cross-site scripting), and nothing is sent to other
// hosts (validatorUrl: null turns off the online validator badge).
window.ui = window.SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#docs',
  deepLinking: true,
  queryConfigEnabled: false,
  validatorUrl: null,
  defaultModelsExpandDepth: 1,
  docExpansion: 'list',
});
