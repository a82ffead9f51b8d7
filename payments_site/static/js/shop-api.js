/*
 * The pages' one way to call the shop's JSON routes: the session cookie, the CSRF token from
 * the page's <meta name="csrf-token">, JSON in and out. Loaded before each page script that
 * needs it (cards.js, checkout.js); no inline script (CSP).
 *
 *   const result = await window.shopApi.postJson(url, body);   // {ok, status, data}
 *   window.shopApi.errorMessage(result.data, 'fallback');
 */
(function () {
  'use strict';

  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = meta ? meta.getAttribute('content') : '';

  // POST JSON; a network failure resolves like an error answer (status 0) with a message
  // the customer can act on, so callers handle one shape.
  async function postJson(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'Accept': 'application/json',
                  'X-CSRFToken': csrfToken},
        body: JSON.stringify(body || {}),
      });
    } catch (err) {
      return {ok: false, status: 0, data: {error: {message:
        'We could not reach the shop. Check your connection and try again.'}}};
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};   // not JSON: callers fall back to their own message
    }
    return {ok: response.ok, status: response.status, data: data};
  }

  function errorMessage(data, fallback) {
    return (data && data.error && data.error.message) || fallback ||
      'Something went wrong. Please try again.';
  }

  window.shopApi = {csrfToken: csrfToken, postJson: postJson, errorMessage: errorMessage};
})();
