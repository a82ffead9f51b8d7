/*
 * Stripe.js v3 for the payments_site Stripe emulator (host-page part).
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 * Copyright (C) 2026 the payments_site authors; extends localstripe (C) 2017 Adrien Vergé.
 *
 * This program is free software: you can redistribute it and/or modify it under the terms of
 * the GNU General Public License as published by the Free Software Foundation, either version 3
 * of the License, or (at your option) any later version. This program is distributed in the hope
 * that it will be useful, but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the LICENSE file in this folder.
 *
 * What this mirrors
 * -----------------
 * The subset of https://js.stripe.com/v3/ that payments_site uses, with
 * Stripe's own names and result shapes:
 *
 *   const stripe = Stripe('pk_test_...');
 *   const elements = stripe.elements({clientSecret, appearance});
 *   const payment = elements.create('payment');  payment.mount('#el');
 *   stripe.confirmPayment({elements, confirmParams: {return_url}, redirect})
 *   stripe.confirmSetup({elements, confirmParams: {return_url}, redirect})
 *   stripe.handleNextAction({clientSecret})
 *   stripe.confirmCardPayment(clientSecret, {payment_method: 'pm_...'})
 *   stripe.confirmCardSetup(clientSecret, {payment_method: 'pm_...'})
 *   stripe.retrievePaymentIntent(clientSecret) / retrieveSetupIntent(...)
 *   stripe.createPaymentMethod({elements, params})
 *
 * and "collect payment details before creating an Intent"
 * (https://docs.stripe.com/payments/accept-a-payment-deferred):
 *
 *   const elements = stripe.elements({mode: 'payment', amount: 1099,
 *     currency: 'usd', setupFutureUsage, captureMethod, paymentMethodTypes,
 *     paymentMethodCreation: 'manual', appearance, locale});   // or mode: 'setup'
 *   await elements.update({amount, currency, setupFutureUsage, mode, ...})
 *   const {error} = await elements.submit();     // validates in the frame, no network
 *   // ... the server creates the PaymentIntent ...
 *   stripe.confirmPayment({elements, clientSecret, confirmParams, redirect})
 *   stripe.confirmSetup({elements, clientSecret, confirmParams, redirect})
 *   stripe.createPaymentMethod({elements, params})   // paymentMethodCreation: 'manual'
 *
 * With Elements created with mode, confirmPayment / confirmSetup /
 * createPaymentMethod reject with Stripe's IntegrationError unless
 * elements.submit() resolved without error first (and the customer has not
 * typed since), and confirming sends the Elements options as client_context,
 * so the emulator, like Stripe, refuses a PaymentIntent whose
 * setup_future_usage differs from the element's setupFutureUsage. Amount and
 * currency are not compared with the intent's: Stripe.js does not send the
 * amount, and Stripe documents no currency check.
 *
 * Like the real thing, card fields live in an iframe served by the
 * emulator (GET /js.stripe.com/v3/elements-inner.html, a different origin
 * from the site): the host page never sees card data, and the frame itself
 * sends it to POST /v1/payment_methods. The host page only ever gets the
 * resulting PaymentMethod (id, brand, last4...). 3-D Secure is a modal
 * dialog in the host page with the buttons "Complete" and "Fail", which
 * call the emulator's POST /v1/{payment,setup}_intents/{id}/_authenticate.
 *
 * No dependencies, no inline styles through attributes, no eval: the
 * script works under a strict Content-Security-Policy on the host page
 * (script-src, connect-src and frame-src must allow the emulator's origin,
 * exactly as they must allow js.stripe.com / api.stripe.com for Stripe).
 */
(function () {
  'use strict';

  // -------------------------------------------------------------------------
  // Where the emulator is: the origin (and path prefix) this script came from.
  // -------------------------------------------------------------------------
  const SCRIPT_SRC = (function () {
    if (document.currentScript && document.currentScript.src) {
      return document.currentScript.src;
    }
    const tag = document.querySelector('script[src*="/js.stripe.com/v3"]');
    return tag ? tag.src : window.location.href;
  })();
  const API_BASE = (function () {
    const match = SCRIPT_SRC.match(/^(.*?)\/js\.stripe\.com\/v3\b/);
    return match ? match[1] : new URL(SCRIPT_SRC).origin;
  })();
  const FRAME_ORIGIN = new URL(API_BASE).origin;
  const FRAME_URL = API_BASE + '/js.stripe.com/v3/elements-inner.html';
  const MESSAGE_SOURCE = 'stripe-emulator';
  const LOAD_TIMEOUT_MS = 10000;

  // -------------------------------------------------------------------------
  // Small helpers
  // -------------------------------------------------------------------------

  // Stripe.js throws an IntegrationError for programming mistakes (bad
  // arguments), and *resolves* `{error}` for anything the customer caused.
  class IntegrationError extends Error {
    constructor(message) {
      super(message);
      this.name = 'IntegrationError';
    }
  }

  // Encode nested params the way Stripe's API expects them:
  // {card: {number: '42'}} -> "card[number]=42".
  function formEncode(params) {
    const pairs = new URLSearchParams();
    (function walk(value, prefix) {
      if (value === undefined || value === null) {
        return;
      }
      if (Array.isArray(value)) {
        value.forEach((item, i) => walk(item, prefix + '[' + i + ']'));
      } else if (typeof value === 'object') {
        Object.keys(value).forEach((key) => {
          walk(value[key], prefix ? prefix + '[' + key + ']' : key);
        });
      } else {
        pairs.append(prefix, String(value));
      }
    })(params, '');
    return pairs.toString();
  }

  function connectionError() {
    return {
      type: 'api_connection_error',
      message: 'An error occurred with our connection to Stripe. ' +
               'Request was retried 0 times.',
    };
  }

  // Call the emulator's API. Form-encoded POSTs and plain GETs are CORS
  // "simple requests", so no preflight is needed. Resolves {data} or {error}.
  async function apiRequest(method, path, params) {
    let url = API_BASE + path;
    const init = {method: method, headers: {}, credentials: 'omit'};
    const encoded = formEncode(params || {});
    if (method === 'GET') {
      if (encoded) {
        url += (url.indexOf('?') === -1 ? '?' : '&') + encoded;
      }
    } else {
      init.body = encoded;
      init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      return {error: connectionError()};
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (response.ok && body && !body.error) {
      return {data: body};
    }
    const error = Object.assign({}, (body && body.error) || {});
    if (!error.type) {
      error.type = response.status >= 500 ? 'api_error' : 'invalid_request_error';
    }
    if (!error.message) {
      error.message = response.status >= 500
        ? 'An unexpected error occurred.'
        : 'Request failed with status ' + response.status + '.';
    }
    return {error: error};
  }

  // The two kinds of intents Stripe.js confirms.
  const KINDS = {
    payment_intent: {
      path: 'payment_intents', resultKey: 'paymentIntent',
      errorField: 'last_payment_error',
    },
    setup_intent: {
      path: 'setup_intents', resultKey: 'setupIntent',
      errorField: 'last_setup_error',
    },
  };

  function parseClientSecret(clientSecret, expectedKind) {
    if (typeof clientSecret !== 'string' || clientSecret.indexOf('_secret_') < 1) {
      throw new IntegrationError(
        'Invalid value for clientSecret: expected a PaymentIntent or ' +
        'SetupIntent client secret like "pi_..._secret_...".');
    }
    const id = clientSecret.slice(0, clientSecret.indexOf('_secret_'));
    const kindName = id.indexOf('seti_') === 0 ? 'setup_intent' : 'payment_intent';
    if (expectedKind && expectedKind !== kindName) {
      throw new IntegrationError(
        'Invalid value for clientSecret: expected a ' + expectedKind +
        ' client secret, got "' + id + '".');
    }
    return {id: id, kindName: kindName, kind: KINDS[kindName]};
  }

  // The error Stripe.js reports when an intent ends up needing a new payment
  // method (a decline, or failed 3-D Secure), built from last_*_error.
  function errorFromIntent(kindName, intent) {
    const kind = KINDS[kindName];
    const last = intent[kind.errorField] || {};
    const error = Object.assign({}, last);
    if (!error.type) {
      error.type = error.code === 'payment_intent_authentication_failure' ||
                   error.code === 'setup_intent_authentication_failure'
        ? 'invalid_request_error' : 'card_error';
    }
    if (!error.code) {
      error.code = 'card_declined';
    }
    if (!error.message) {
      error.message = 'Your card was declined.';
    }
    error[kindName] = intent;
    return error;
  }

  function formatAmount(amount, currency) {
    try {
      const code = String(currency || '').toUpperCase();
      const format = new Intl.NumberFormat(undefined, {style: 'currency', currency: code});
      const digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / Math.pow(10, digits));
    } catch (err) {
      return amount + ' ' + currency;
    }
  }

  // -------------------------------------------------------------------------
  // The 3-D Secure challenge. Stripe shows the issuer's page in a modal; the
  // emulator shows a dialog with the same two outcomes as Stripe's test
  // page: "Complete" (authentication succeeds) and "Fail" (it fails).
  // Escape / closing the dialog counts as a failed authentication, as
  // closing Stripe's modal does.
  // -------------------------------------------------------------------------
  let dialogCounter = 0;

  function showThreeDSecure(kindName, intent) {
    return new Promise((resolve) => {
      dialogCounter += 1;
      const titleId = '__stripeEmulator3dsTitle' + dialogCounter;
      const dialog = document.createElement('dialog');
      dialog.setAttribute('aria-labelledby', titleId);
      dialog.setAttribute('aria-modal', 'true');
      dialog.className = '__PrivateStripe3DS';
      Object.assign(dialog.style, {
        boxSizing: 'border-box', width: 'min(360px, calc(100vw - 32px))',
        padding: '24px', border: '1px solid #d5dbe1', borderRadius: '8px',
        background: '#ffffff', color: '#30313d',
        boxShadow: '0 12px 40px rgba(0, 0, 0, 0.25)',
        fontFamily: '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, ' +
                    '"Helvetica Neue", Arial, sans-serif',
        fontSize: '15px', lineHeight: '1.4', textAlign: 'left',
      });

      const title = document.createElement('h2');
      title.id = titleId;
      title.textContent = '3D Secure authentication';
      Object.assign(title.style, {margin: '0 0 8px', fontSize: '18px', fontWeight: '600'});

      const text = document.createElement('p');
      Object.assign(text.style, {margin: '0 0 20px', color: '#6a7383'});
      if (kindName === 'payment_intent') {
        text.textContent = 'Your bank asks you to confirm this payment of ' +
          formatAmount(intent.amount, intent.currency) + '. ' +
          'This is a test authentication from the Stripe emulator.';
      } else {
        text.textContent = 'Your bank asks you to confirm that this card may ' +
          'be saved for future payments. ' +
          'This is a test authentication from the Stripe emulator.';
      }

      const buttons = document.createElement('div');
      Object.assign(buttons.style, {display: 'flex', gap: '8px', justifyContent: 'flex-end'});

      function makeButton(label, primary) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = label;
        Object.assign(button.style, {
          font: 'inherit', fontWeight: '600', padding: '8px 16px',
          borderRadius: '6px', cursor: 'pointer',
          border: primary ? '1px solid #0570de' : '1px solid #d5dbe1',
          background: primary ? '#0570de' : '#ffffff',
          color: primary ? '#ffffff' : '#30313d',
        });
        return button;
      }
      const fail = makeButton('Fail', false);
      const complete = makeButton('Complete', true);
      buttons.appendChild(fail);
      buttons.appendChild(complete);

      dialog.appendChild(title);
      dialog.appendChild(text);
      dialog.appendChild(buttons);
      document.body.appendChild(dialog);

      let settled = false;
      function finish(success) {
        if (settled) {
          return;
        }
        settled = true;
        if (dialog.open && typeof dialog.close === 'function') {
          dialog.close();
        }
        dialog.remove();
        resolve(success);
      }
      complete.addEventListener('click', () => finish(true));
      fail.addEventListener('click', () => finish(false));
      dialog.addEventListener('cancel', (event) => {
        event.preventDefault();
        finish(false);
      });

      if (typeof dialog.showModal === 'function') {
        dialog.showModal();
      } else {
        dialog.setAttribute('open', '');
      }
      complete.focus();
    });
  }

  // -------------------------------------------------------------------------
  // Elements and the Payment Element
  // -------------------------------------------------------------------------
  let frameCounter = 0;
  const mountedElements = {};   // frameId -> PaymentElement

  // One listener for every frame: accept messages only from our own frames,
  // on the emulator's origin.
  window.addEventListener('message', (event) => {
    if (event.origin !== FRAME_ORIGIN) {
      return;
    }
    const data = event.data;
    if (!data || data.source !== MESSAGE_SOURCE || !data.frameId) {
      return;
    }
    const element = mountedElements[data.frameId];
    if (element && element._iframe && event.source === element._iframe.contentWindow) {
      element._onFrameMessage(data);
    }
  });

  class PaymentElement {
    constructor(elements, type, options) {
      this._elements = elements;
      this._type = type;
      this._options = options || {};
      this._listeners = {};
      this._iframe = null;
      this._container = null;
      this._frameId = null;
      this._destroyed = false;
      this._state = {complete: false, empty: true, brand: 'unknown'};
      this._pending = {};
      this._requestCounter = 0;
      this._resetReady();
    }

    // Resolves true once the frame is ready, or false if it never loads (the
    // element then emits 'loaderror', as Stripe's does).
    _resetReady() {
      this._connected = false;
      clearTimeout(this._loadTimer);
      this._ready = new Promise((resolve) => {
        this._resolveReady = resolve;
      });
    }

    _startLoadTimer() {
      clearTimeout(this._loadTimer);
      this._loadTimer = setTimeout(() => {
        this._resolveReady(false);
        this._emit('loaderror', {
          elementType: this._type,
          error: Object.assign(connectionError(), {
            message: 'The Payment Element could not load from ' + FRAME_URL + '.',
          }),
        });
      }, LOAD_TIMEOUT_MS);
    }

    // mount('#selector' | domElement)
    mount(target) {
      if (this._destroyed) {
        throw new IntegrationError('This Element has already been destroyed. ' +
                                   'Please create a new one.');
      }
      const node = typeof target === 'string' ? document.querySelector(target) : target;
      if (!node || !(node instanceof window.Element)) {
        throw new IntegrationError('The selector you specified (' + target +
          ') applies to no DOM elements that are currently on the page.\n' +
          'Make sure the element exists on the page before calling mount().');
      }
      if (this._container) {
        if (this._container.parentNode === node) {
          return;
        }
        throw new IntegrationError('This Element is already mounted. Use ' +
          'unmount() to unmount the Element before re-mounting.');
      }
      frameCounter += 1;
      this._frameId = 'f' + Date.now().toString(36) + frameCounter;

      // Stripe wraps its iframe in a private container element.
      const container = document.createElement('div');
      container.className = '__PrivateStripeElement';
      Object.assign(container.style, {
        margin: '0', padding: '0', border: 'none', display: 'block',
        background: 'transparent', position: 'relative', opacity: '1',
      });

      const iframe = document.createElement('iframe');
      // Real Stripe names its frames __privateStripeFrameNNNN; test tools
      // (and this project's tests) find the fields through that name.
      iframe.name = '__privateStripeFrame' + String(4000 + frameCounter);
      iframe.title = 'Secure payment input frame';
      iframe.setAttribute('frameborder', '0');
      iframe.setAttribute('allowtransparency', 'true');
      iframe.setAttribute('scrolling', 'no');
      iframe.setAttribute('allow', 'payment *');
      Object.assign(iframe.style, {
        border: '0', margin: '0', padding: '0', width: '100%',
        overflow: 'hidden', display: 'block', userSelect: 'none',
        colorScheme: 'light only', height: '236px',
      });
      const hash = new URLSearchParams({
        frameId: this._frameId,
        key: this._elements._stripe._key,
        parentOrigin: window.location.origin,
      });
      iframe.src = FRAME_URL + '#' + hash.toString();

      container.appendChild(iframe);
      node.appendChild(container);
      this._startLoadTimer();
      this._container = container;
      this._iframe = iframe;
      mountedElements[this._frameId] = this;
    }

    unmount() {
      if (!this._container) {
        return;
      }
      delete mountedElements[this._frameId];
      this._container.remove();
      this._container = null;
      this._iframe = null;
      this._state = {complete: false, empty: true, brand: 'unknown'};
      Object.keys(this._pending).forEach((id) => {
        this._pending[id]({error: {type: 'validation_error', code: 'element_unmounted',
                                   message: 'The Payment Element was unmounted.'}});
      });
      this._pending = {};
      this._resetReady();
    }

    destroy() {
      this.unmount();
      this._destroyed = true;
      this._elements._remove(this);
    }

    on(event, handler) {
      (this._listeners[event] = this._listeners[event] || []).push(handler);
      return this;
    }

    once(event, handler) {
      const wrapper = (payload) => {
        this.off(event, wrapper);
        handler(payload);
      };
      return this.on(event, wrapper);
    }

    off(event, handler) {
      if (!handler) {
        delete this._listeners[event];
      } else if (this._listeners[event]) {
        this._listeners[event] = this._listeners[event].filter((h) => h !== handler);
      }
      return this;
    }

    focus() {
      if (this._iframe) {
        this._iframe.focus();
        this._post({type: 'focus'});
      }
    }

    blur() {
      this._post({type: 'blur'});
    }

    clear() {
      this._post({type: 'clear'});
    }

    update(options) {
      Object.assign(this._options, options || {});
      this._post({type: 'update', options: this._options});
      return this;
    }

    collapse() {
      return this;
    }

    _emit(event, payload) {
      (this._listeners[event] || []).slice().forEach((handler) => {
        try {
          handler(payload);
        } catch (err) {
          setTimeout(() => { throw err; });
        }
      });
    }

    _changeEvent() {
      return {
        elementType: this._type,
        complete: this._state.complete,
        empty: this._state.empty,
        collapsed: false,
        value: {type: 'card'},
      };
    }

    _post(message) {
      if (this._iframe && this._iframe.contentWindow && this._connected) {
        message.source = MESSAGE_SOURCE;
        this._iframe.contentWindow.postMessage(message, FRAME_ORIGIN);
      }
    }

    // Ask the frame to do something and wait for its answer.
    async _request(type, payload) {
      if (!this._iframe) {
        throw new IntegrationError('The Payment Element is not mounted. ' +
                                   'Call element.mount() first.');
      }
      if (!(await this._ready)) {
        return {error: connectionError()};
      }
      this._requestCounter += 1;
      const requestId = 'r' + this._requestCounter;
      return new Promise((resolve) => {
        this._pending[requestId] = resolve;
        this._post(Object.assign({type: type, requestId: requestId}, payload || {}));
      });
    }

    _onFrameMessage(data) {
      switch (data.type) {
        case 'loaded':
          // The frame's script runs: send it what it needs, then it says ready.
          this._connected = true;
          this._post({
            type: 'init',
            appearance: this._elements._options.appearance || {},
            options: this._options,
            intent: this._elements._display(),
          });
          break;
        case 'ready':
          clearTimeout(this._loadTimer);
          this._ready = Promise.resolve(true);
          this._resolveReady(true);
          this._emit('ready', {elementType: this._type});
          break;
        case 'resize':
          if (this._iframe && data.height > 0) {
            this._iframe.style.height = Math.ceil(data.height) + 'px';
          }
          break;
        case 'change':
          this._state = {complete: !!data.complete, empty: !!data.empty,
                         brand: data.brand || 'unknown'};
          this._emit('change', this._changeEvent());
          break;
        case 'edited':
          // The customer typed: a previous elements.submit() no longer vouches for
          // what the fields hold.
          this._elements._submitted = false;
          break;
        case 'focus':
          this._emit('focus', {elementType: this._type});
          break;
        case 'blur':
          this._emit('blur', {elementType: this._type});
          break;
        case 'submit': {
          // Enter inside the card fields submits the host form, as in Stripe.
          const form = this._container && this._container.closest('form');
          if (form && typeof form.requestSubmit === 'function') {
            form.requestSubmit();
          }
          break;
        }
        case 'response': {
          const resolve = this._pending[data.requestId];
          if (resolve) {
            delete this._pending[data.requestId];
            resolve(data.result);
          }
          break;
        }
        default:
          break;
      }
    }
  }

  // -------------------------------------------------------------------------
  // Elements created without an intent ("collect payment details before
  // creating an Intent"): stripe.elements({mode, amount, currency, ...}).
  // The options are checked here as Stripe.js checks them (IntegrationError),
  // and Stripe.js's own two spellings are both accepted (setupFutureUsage /
  // setup_future_usage...).
  // -------------------------------------------------------------------------
  const MODES = ['payment', 'setup', 'subscription'];
  const FUTURE_USAGES = ['off_session', 'on_session'];
  const CAPTURE_METHODS = ['automatic', 'automatic_async', 'manual'];
  const DEFERRED_GUIDE = 'https://stripe.com/docs/payments/accept-a-payment-deferred';
  // Option name -> its other spelling.
  const SPELLINGS = {
    setupFutureUsage: 'setup_future_usage', setup_future_usage: 'setupFutureUsage',
    captureMethod: 'capture_method', capture_method: 'captureMethod',
    paymentMethodTypes: 'payment_method_types', payment_method_types: 'paymentMethodTypes',
  };
  const INTENT_OPTIONS = ['mode', 'amount', 'currency'].concat(Object.keys(SPELLINGS));

  function shown(value) {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  function either(options, camel, snake) {
    return options[camel] !== undefined ? options[camel] : options[snake];
  }

  function oneOf(method, name, value, allowed) {
    if (value !== undefined && value !== null && allowed.indexOf(value) === -1) {
      throw new IntegrationError('Invalid value for ' + method + ': ' + name + ' should be ' +
        'one of the following strings: ' + allowed.join(', ') + '. You specified: ' +
        shown(value) + '.');
    }
    return value === undefined ? null : value;
  }

  // The intent-related options of Elements created with `mode`, normalised.
  function modeOptions(options, method) {
    const mode = options.mode;
    if (MODES.indexOf(mode) === -1) {
      throw new IntegrationError('Invalid value for ' + method + ': mode should be one of ' +
        'the following strings: ' + MODES.join(', ') + '. You specified: ' + shown(mode) + '.');
    }
    const needsAmount = mode !== 'setup';
    let amount = null;
    if (needsAmount) {
      amount = options.amount;
      if (amount === undefined || amount === null) {
        throw new IntegrationError('Missing value for ' + method + ': amount should be ' +
          'an integer (in the smallest currency unit) when mode is "' + mode + '".');
      }
      const minimum = mode === 'payment' ? 1 : 0;
      if (typeof amount !== 'number' || !Number.isInteger(amount) || amount < minimum) {
        throw new IntegrationError('Invalid value for ' + method + ': amount should be ' +
          (minimum ? 'a positive' : 'a non-negative') + ' integer in the smallest currency ' +
          'unit (1099 for $10.99). You specified: ' + shown(amount) + '.');
      }
    }
    const currency = options.currency;
    if (currency === undefined || currency === null) {
      if (needsAmount) {
        throw new IntegrationError('Missing value for ' + method + ': currency should be a ' +
          'three-letter ISO currency code in lowercase, like "usd", when mode is "' +
          mode + '".');
      }
    } else if (typeof currency !== 'string' || !/^[a-z]{3}$/.test(currency)) {
      throw new IntegrationError('Invalid value for ' + method + ': currency should be a ' +
        'three-letter ISO currency code in lowercase, like "usd". You specified: ' +
        shown(currency) + '.');
    }
    const types = either(options, 'paymentMethodTypes', 'payment_method_types');
    if (types !== undefined && types !== null) {
      if (!Array.isArray(types) || types.some((type) => typeof type !== 'string')) {
        throw new IntegrationError('Invalid value for ' + method + ': paymentMethodTypes ' +
          'should be an array of strings. You specified: ' + shown(types) + '.');
      }
      if (types.indexOf('card') === -1) {
        throw new IntegrationError('Invalid value for ' + method + ': the Stripe ' +
          'emulator\'s Payment Element only collects cards, so paymentMethodTypes must ' +
          'include "card". You specified: ' + shown(types) + '.');
      }
    }
    const creation = options.paymentMethodCreation;
    if (creation !== undefined && creation !== 'manual') {
      throw new IntegrationError('Invalid value for ' + method + ': paymentMethodCreation ' +
        'should be "manual". You specified: ' + shown(creation) + '.');
    }
    return {
      mode: mode,
      amount: amount,
      currency: currency || null,
      setupFutureUsage: oneOf(method, 'setupFutureUsage',
        either(options, 'setupFutureUsage', 'setup_future_usage'), FUTURE_USAGES),
      captureMethod: oneOf(method, 'captureMethod',
        either(options, 'captureMethod', 'capture_method'), CAPTURE_METHODS),
      paymentMethodTypes: types || null,
      paymentMethodCreation: creation || null,
    };
  }

  function checkClientSecret(clientSecret, method) {
    if (typeof clientSecret !== 'string' || !/^[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+$/
      .test(clientSecret)) {
      throw new IntegrationError('Invalid value for ' + method + ': clientSecret should be ' +
        'a client secret of the form ${id}_secret_${secret}. You specified: ' +
        shown(clientSecret) + '.');
    }
  }

  class Elements {
    constructor(stripe, options) {
      if (options !== undefined && (options === null || typeof options !== 'object')) {
        throw new IntegrationError('Invalid value for elements(): options should be an ' +
          'object. You specified: ' + shown(options) + '.');
      }
      options = Object.assign({}, options || {});
      if (options.clientSecret !== undefined && options.mode !== undefined) {
        throw new IntegrationError('Invalid value for elements(): pass either ' +
          '`clientSecret` (an existing PaymentIntent or SetupIntent) or `mode` (collect ' +
          'payment details before creating an Intent), not both.');
      }
      if (options.clientSecret !== undefined) {
        checkClientSecret(options.clientSecret, 'elements()');
      }
      this._stripe = stripe;
      this._options = options;
      this._elements = {};
      this._listeners = {};
      // Elements created with `mode` (no intent yet): their normalised options.
      this._deferred = options.mode !== undefined ? modeOptions(options, 'elements()') : null;
      // True once elements.submit() resolved without error, until the customer edits
      // the fields again: what confirmPayment / createPaymentMethod require.
      this._submitted = false;
    }

    create(type, options) {
      if (type !== 'payment' && type !== 'card') {
        throw new IntegrationError('The Stripe emulator only implements the ' +
          '"payment" (and "card") Element; got "' + type + '".');
      }
      if (type === 'payment' && !this._deferred && !this._options.clientSecret) {
        throw new IntegrationError('In order to create a payment element, you must pass a ' +
          'clientSecret or mode when creating the Elements group.\n\ne.g. ' +
          'stripe.elements({clientSecret: "{{CLIENT_SECRET}}"})');
      }
      if (this._elements[type]) {
        throw new IntegrationError('Can only create one Element of type ' + type + '.');
      }
      const element = new PaymentElement(this, type, options);
      this._elements[type] = element;
      return element;
    }

    getElement(type) {
      return this._elements[type] || null;
    }

    on(event, handler) {
      (this._listeners[event] = this._listeners[event] || []).push(handler);
      return this;
    }

    off(event, handler) {
      if (this._listeners[event]) {
        this._listeners[event] = handler
          ? this._listeners[event].filter((h) => h !== handler) : [];
      }
      return this;
    }

    // What the frame shows besides the card fields: the amount (Elements created
    // with mode 'payment') and, when the card will be saved, the terms line.
    _display() {
      const deferred = this._deferred;
      return {
        locale: this._options.locale || 'auto',
        mode: deferred ? deferred.mode : null,
        amount: deferred ? deferred.amount : null,
        currency: deferred ? deferred.currency : null,
        setupFutureUsage: deferred ? deferred.setupFutureUsage : null,
      };
    }

    // elements.update(options): shallow-merged into the options; for Elements
    // created with mode, changes what the element shows and what confirmation
    // sends. No network call. Resolves once the frames have applied it.
    async update(options) {
      if (!options || typeof options !== 'object') {
        throw new IntegrationError('Invalid value for elements.update(): options should ' +
          'be an object. You specified: ' + shown(options) + '.');
      }
      options = Object.assign({}, options);
      if (options.clientSecret !== undefined) {
        throw new IntegrationError('Invalid value for elements.update(): clientSecret ' +
          'cannot be updated. Create a new Elements group for another intent.');
      }
      const intentChanges = INTENT_OPTIONS.filter((name) => name in options);
      if (intentChanges.length && !this._deferred) {
        throw new IntegrationError('Invalid value for elements.update(): ' +
          intentChanges.join(', ') + ' can only be updated on Elements created with ' +
          '`mode` (without a clientSecret).');
      }
      const merged = Object.assign({}, this._options, options);
      // The spelling the page just used wins over the other one from before.
      Object.keys(SPELLINGS).forEach((name) => {
        if (name in options) {
          delete merged[SPELLINGS[name]];
        }
      });
      if (intentChanges.length) {
        this._deferred = modeOptions(merged, 'elements.update()');
      }
      this._options = merged;
      const message = {appearance: this._options.appearance || {}, intent: this._display()};
      await Promise.all(Object.keys(this._elements).map((type) => {
        const element = this._elements[type];
        return element._iframe ? element._request('update', message) : null;
      }));
      (this._listeners['update-end'] || []).slice().forEach((handler) => handler());
    }

    async fetchUpdates() {
      return {};
    }

    // elements.submit(): validates the fields inside the frame (showing their
    // errors) without any network call. Resolves {error} (a validation_error)
    // or {selectedPaymentMethod: 'card'}.
    async submit() {
      const element = this._paymentElement();
      if (!element) {
        throw new IntegrationError('elements.submit(): no Payment Element was created.');
      }
      this._submitted = false;
      const result = await element._request('validate');
      if (result && result.error) {
        return {error: result.error};
      }
      this._submitted = true;
      return {selectedPaymentMethod: 'card'};
    }

    // For Elements created with mode: Stripe.js refuses to read the fields
    // unless elements.submit() succeeded first (and nothing was typed since).
    _requireSubmit(caller) {
      if (this._deferred && !this._submitted) {
        throw new IntegrationError('elements.submit() must be called before ' + caller +
          '. Call elements.submit() as soon as your customer presses pay, prior to any ' +
          'asynchronous work. Integration guide: ' + DEFERRED_GUIDE);
      }
    }

    _paymentElement() {
      return this._elements.payment || this._elements.card || null;
    }

    _remove(element) {
      Object.keys(this._elements).forEach((type) => {
        if (this._elements[type] === element) {
          delete this._elements[type];
        }
      });
    }
  }

  // -------------------------------------------------------------------------
  // The Stripe object
  // -------------------------------------------------------------------------
  class StripeEmulator {
    constructor(key, options) {
      if (typeof key !== 'string' || key.indexOf('pk_') !== 0) {
        throw new IntegrationError('Invalid API Key: ' + key + '. Use your ' +
          'publishable key (pk_...) with Stripe().');
      }
      this._key = key;
      this._options = options || {};
    }

    elements(options) {
      return new Elements(this, options);
    }

    // --- PaymentMethods ----------------------------------------------------

    // The frame (on the emulator's origin) sends the card to
    // POST /v1/payment_methods itself; we only get the PaymentMethod back.
    async _paymentMethodFromElement(element, billingDetails) {
      if (!element || !(element instanceof PaymentElement)) {
        throw new IntegrationError('Invalid value for elements: expected an ' +
          'Elements group with a mounted Payment Element.');
      }
      const result = await element._request('createPaymentMethod', {
        billing_details: billingDetails || null,
      });
      return result || {error: connectionError()};
    }

    // createPaymentMethod({elements, params}) and the older
    // createPaymentMethod({type: 'card', card: element, billing_details}).
    // Elements created with mode need paymentMethodCreation: 'manual' and a
    // successful elements.submit() first, as in Stripe.js.
    async createPaymentMethod(data) {
      data = data || {};
      let element;
      let billingDetails;
      if (data.elements) {
        if (!(data.elements instanceof Elements)) {
          throw new IntegrationError('Invalid value for createPaymentMethod(): elements ' +
            'should be an Elements group created with stripe.elements().');
        }
        const deferred = data.elements._deferred;
        if (deferred && deferred.paymentMethodCreation !== 'manual') {
          throw new IntegrationError('createPaymentMethod(): to create a PaymentMethod ' +
            'from Elements created without an Intent, pass paymentMethodCreation: ' +
            '\'manual\' to stripe.elements().');
        }
        data.elements._requireSubmit('createPaymentMethod()');
        element = data.elements._paymentElement();
        billingDetails = data.params && data.params.billing_details;
      } else if (data.card instanceof PaymentElement) {
        element = data.card;
        billingDetails = data.billing_details;
      }
      return this._paymentMethodFromElement(element, billingDetails);
    }

    // --- Retrieving intents (publishable key + client secret) -------------

    async _retrieve(clientSecret) {
      const parsed = parseClientSecret(clientSecret);
      return apiRequest('GET', '/v1/' + parsed.kind.path + '/' + parsed.id,
                        {key: this._key, client_secret: clientSecret});
    }

    async retrievePaymentIntent(clientSecret) {
      parseClientSecret(clientSecret, 'payment_intent');
      const result = await this._retrieve(clientSecret);
      return result.error ? {error: result.error} : {paymentIntent: result.data};
    }

    async retrieveSetupIntent(clientSecret) {
      parseClientSecret(clientSecret, 'setup_intent');
      const result = await this._retrieve(clientSecret);
      return result.error ? {error: result.error} : {setupIntent: result.data};
    }

    // --- Confirming ---------------------------------------------------------

    // POST /v1/{kind}/{id}/confirm, then run any next action (3-D Secure).
    // Resolves {intent, error, authenticated}.
    async _confirmIntent(clientSecret, params) {
      const parsed = parseClientSecret(clientSecret);
      const body = Object.assign({key: this._key, client_secret: clientSecret}, params);
      const confirmed = await apiRequest(
        'POST', '/v1/' + parsed.kind.path + '/' + parsed.id + '/confirm', body);
      if (confirmed.error) {
        return {error: await this._attachIntent(parsed, clientSecret, confirmed.error)};
      }
      return this._settle(parsed, clientSecret, confirmed.data);
    }

    // A declined confirm answers 402 with the error; Stripe's error carries
    // the intent (error.payment_intent / error.setup_intent). If the server
    // did not include it, fetch it so callers always get it.
    async _attachIntent(parsed, clientSecret, error) {
      if (error.type === 'card_error' && !error[parsed.kindName]) {
        const fetched = await this._retrieve(clientSecret);
        if (fetched.data) {
          error[parsed.kindName] = fetched.data;
          if (!error.code && fetched.data[parsed.kind.errorField]) {
            error.code = fetched.data[parsed.kind.errorField].code;
          }
        }
      }
      return error;
    }

    // Handle `requires_action` (3-D Secure) and turn the intent into a result.
    async _settle(parsed, clientSecret, intent) {
      let authenticated = false;
      if (intent.status === 'requires_action') {
        const success = await showThreeDSecure(parsed.kindName, intent);
        const auth = await apiRequest(
          'POST',
          '/v1/' + parsed.kind.path + '/' + parsed.id + '/_authenticate?success=' + success,
          {key: this._key, client_secret: clientSecret});
        if (auth.error) {
          return {error: await this._attachIntent(parsed, clientSecret, auth.error)};
        }
        const fetched = await this._retrieve(clientSecret);
        if (fetched.error) {
          return {error: fetched.error};
        }
        intent = fetched.data;
        authenticated = true;
      }
      if (intent.status === 'requires_payment_method' && intent[parsed.kind.errorField]) {
        return {error: errorFromIntent(parsed.kindName, intent), intent: intent, authenticated};
      }
      if (intent.status === 'canceled' && parsed.kindName === 'setup_intent' &&
          intent[parsed.kind.errorField]) {
        return {error: errorFromIntent(parsed.kindName, intent), intent: intent, authenticated};
      }
      return {intent: intent, authenticated: authenticated};
    }

    // Shared by confirmPayment and confirmSetup.
    async _confirmWithElements(kindName, method, options) {
      options = options || {};
      const elements = options.elements;
      const confirmParams = Object.assign({}, options.confirmParams || {});
      const redirect = options.redirect || 'always';
      if (redirect !== 'always' && redirect !== 'if_required') {
        throw new IntegrationError('Invalid value for ' + method +
          '(): redirect should be one of "always" or "if_required".');
      }
      if (redirect === 'always' && !confirmParams.return_url) {
        throw new IntegrationError('stripe.' + method + '(): the ' +
          '`confirmParams.return_url` argument is required unless passing ' +
          '`redirect: \'if_required\'`');
      }
      if (elements && !(elements instanceof Elements)) {
        throw new IntegrationError('Invalid value for stripe.' + method + '(): elements ' +
          'should be an Elements group created with stripe.elements().');
      }
      // Elements created with mode (the intent was created after the customer
      // pressed pay): the page passes the new intent's clientSecret, and must
      // have called elements.submit() first.
      const deferred = elements ? elements._deferred : null;
      if (deferred) {
        if (!options.clientSecret) {
          throw new IntegrationError('You must pass in a clientSecret when calling stripe.' +
            method + '().');
        }
        const setupMode = deferred.mode === 'setup';
        if (setupMode !== (kindName === 'setup_intent')) {
          throw new IntegrationError('stripe.' + method + '(): the Elements group was ' +
            'created with mode: \'' + deferred.mode + '\'; use stripe.' +
            (setupMode ? 'confirmSetup' : 'confirmPayment') + '() with it.');
        }
        elements._requireSubmit('stripe.' + method + '()');
      }
      const clientSecret = options.clientSecret ||
        (elements && elements._options.clientSecret);
      if (!clientSecret) {
        throw new IntegrationError('stripe.' + method + '(): pass `elements` ' +
          'created with a clientSecret, or a `clientSecret`.');
      }
      parseClientSecret(clientSecret, kindName);

      // The card: a saved PaymentMethod id, or the Payment Element's fields.
      let paymentMethod = confirmParams.payment_method;
      if (typeof paymentMethod !== 'string') {
        if (!elements) {
          throw new IntegrationError('stripe.' + method + '(): `elements` is required.');
        }
        const billing = confirmParams.payment_method_data &&
          confirmParams.payment_method_data.billing_details;
        const created = await this._paymentMethodFromElement(
          elements._paymentElement(), billing);
        if (created.error) {
          return {error: created.error};
        }
        paymentMethod = created.paymentMethod.id;
      }

      const params = {payment_method: paymentMethod};
      if (confirmParams.return_url) {
        params.return_url = confirmParams.return_url;
      }
      if (deferred) {
        // What Stripe.js tells the API about the Elements options, so it can refuse
        // an intent that disagrees with what the customer was shown.
        params.client_context = {
          mode: deferred.mode,
          currency: deferred.currency,
          setup_future_usage: deferred.setupFutureUsage,
          capture_method: deferred.captureMethod,
          payment_method_types: deferred.paymentMethodTypes,
        };
      }
      if (kindName === 'payment_intent') {
        if (confirmParams.save_payment_method) {
          params.setup_future_usage = 'off_session';
        } else if (confirmParams.setup_future_usage) {
          params.setup_future_usage = confirmParams.setup_future_usage;
        }
        if (confirmParams.receipt_email) {
          params.receipt_email = confirmParams.receipt_email;
        }
      }

      const outcome = await this._confirmIntent(clientSecret, params);
      const resultKey = KINDS[kindName].resultKey;

      // redirect: 'always' -> go to return_url once the intent has settled
      // (immediate errors such as a decline are still returned to the page).
      if (redirect === 'always' && (!outcome.error || outcome.authenticated)) {
        const intent = outcome.intent || (outcome.error && outcome.error[kindName]);
        if (intent) {
          this._redirect(confirmParams.return_url, kindName, intent, clientSecret);
          return new Promise(() => {});   // the page is navigating away
        }
      }
      if (outcome.error) {
        return {error: outcome.error};
      }
      const result = {};
      result[resultKey] = outcome.intent;
      return result;
    }

    _redirect(returnUrl, kindName, intent, clientSecret) {
      const url = new URL(returnUrl, window.location.href);
      let status = 'failed';
      if (intent.status === 'succeeded' || intent.status === 'requires_capture') {
        status = 'succeeded';
      } else if (intent.status === 'processing') {
        status = 'processing';
      }
      url.searchParams.set(kindName, intent.id);
      url.searchParams.set(kindName + '_client_secret', clientSecret);
      url.searchParams.set('redirect_status', status);
      window.location.assign(url.toString());
    }

    confirmPayment(options) {
      return this._confirmWithElements('payment_intent', 'confirmPayment', options);
    }

    confirmSetup(options) {
      return this._confirmWithElements('setup_intent', 'confirmSetup', options);
    }

    // confirmCardPayment(clientSecret, {payment_method: 'pm_...' | {card: element}})
    async _confirmCard(kindName, clientSecret, data) {
      const parsed = parseClientSecret(clientSecret, kindName);
      data = data || {};
      const params = {};
      let paymentMethod = data.payment_method;
      if (paymentMethod && typeof paymentMethod === 'object') {
        const created = await this._paymentMethodFromElement(
          paymentMethod.card, paymentMethod.billing_details);
        if (created.error) {
          return {error: created.error};
        }
        paymentMethod = created.paymentMethod.id;
      }
      if (paymentMethod) {
        params.payment_method = paymentMethod;
      }
      if (data.return_url) {
        params.return_url = data.return_url;
      }
      if (kindName === 'payment_intent' && data.setup_future_usage) {
        params.setup_future_usage = data.setup_future_usage;
      }
      const outcome = await this._confirmIntent(clientSecret, params);
      if (outcome.error) {
        return {error: outcome.error};
      }
      const result = {};
      result[parsed.kind.resultKey] = outcome.intent;
      return result;
    }

    confirmCardPayment(clientSecret, data) {
      return this._confirmCard('payment_intent', clientSecret, data);
    }

    confirmCardSetup(clientSecret, data) {
      return this._confirmCard('setup_intent', clientSecret, data);
    }

    // handleNextAction({clientSecret}): the server confirmed the intent and
    // it needs the customer (3-D Secure). Works for PIs and SIs (seti_).
    async handleNextAction(options) {
      const clientSecret = options && options.clientSecret;
      const parsed = parseClientSecret(clientSecret);
      const fetched = await this._retrieve(clientSecret);
      if (fetched.error) {
        return {error: fetched.error};
      }
      const outcome = await this._settle(parsed, clientSecret, fetched.data);
      if (outcome.error) {
        return {error: outcome.error};
      }
      const result = {};
      result[parsed.kind.resultKey] = outcome.intent;
      return result;
    }

    // Older names some integrations still call.
    handleCardAction(clientSecret) {
      return this.handleNextAction({clientSecret: clientSecret});
    }
  }

  // Stripe(key) and new Stripe(key) both work, as with the real library.
  function Stripe(key, options) {
    return new StripeEmulator(key, options);
  }
  Stripe.version = 3;
  Stripe.IntegrationError = IntegrationError;
  Stripe.__emulator = {apiBase: API_BASE};

  window.Stripe = Stripe;
})();
