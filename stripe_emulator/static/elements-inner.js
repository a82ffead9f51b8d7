/*
 * The Stripe emulator's Payment Element frame: card fields.
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
 * Runs inside the iframe that stripe-v3.js mounts, on the emulator's
 * origin. Like Stripe's own frame it formats and validates the card as it
 * is typed (with Stripe's error codes and messages), and on request sends
 * it to POST /v1/payment_methods on its own origin with the publishable
 * key. The parent page is only told whether the form is complete, and gets
 * the PaymentMethod object back: card data never leaves this frame except
 * to the emulator.
 *
 * Protocol (window.postMessage, {source: 'stripe-emulator', ...}):
 *   frame -> parent: loaded, ready, change {complete, empty, brand},
 *                    edited (any keystroke), resize {height}, focus, blur,
 *                    submit, response {requestId, result}
 *   parent -> frame: init {appearance, options, intent},
 *                    update {appearance, options, intent, requestId?},
 *                    focus, blur, clear, validate {requestId},
 *                    createPaymentMethod {requestId, billing_details}
 *
 * `intent` describes Elements created with mode (no intent yet):
 * {mode, amount, currency, setupFutureUsage, locale}; the frame shows the
 * amount and, when the card will be saved, Stripe's terms line.
 */
(function () {
  'use strict';

  const MESSAGE_SOURCE = 'stripe-emulator';
  const params = new URLSearchParams(window.location.hash.slice(1));
  const FRAME_ID = params.get('frameId') || '';
  const KEY = params.get('key') || '';
  const PARENT_ORIGIN = (function () {
    const origin = params.get('parentOrigin');
    // A file:// page has the opaque origin "null": it can only be reached with '*'.
    return origin && origin !== 'null' ? origin : '*';
  })();
  const API_BASE = (function () {
    const path = window.location.pathname;
    const index = path.indexOf('/js.stripe.com/v3');
    return window.location.origin + (index > 0 ? path.slice(0, index) : '');
  })();

  const form = document.getElementById('card-form');
  const inputs = {
    number: document.getElementById('number'),
    expiry: document.getElementById('expiry'),
    cvc: document.getElementById('cvc'),
    postal: document.getElementById('postal'),
  };
  const errors = {
    number: document.getElementById('number-error'),
    expiry: document.getElementById('expiry-error'),
    cvc: document.getElementById('cvc-error'),
    postal: document.getElementById('postal-error'),
  };
  const brandBadge = document.getElementById('brand');
  const summary = document.getElementById('summary');
  const terms = document.getElementById('terms');
  const ALL_FIELDS = ['number', 'expiry', 'cvc', 'postal'];
  let activeFields = ALL_FIELDS.slice();
  const touched = {number: false, expiry: false, cvc: false, postal: false};

  function post(message) {
    message.source = MESSAGE_SOURCE;
    message.frameId = FRAME_ID;
    window.parent.postMessage(message, PARENT_ORIGIN);
  }

  // -------------------------------------------------------------------------
  // Card brands (by number prefix) and their lengths, as Stripe detects them.
  // -------------------------------------------------------------------------
  const BRANDS = [
    {brand: 'amex', label: 'Amex', pattern: /^3[47]/, lengths: [15], cvc: 4,
     groups: [4, 6, 5]},
    {brand: 'diners', label: 'Diners', pattern: /^3(0[0-5]|[689])/, lengths: [14, 16],
     cvc: 3, groups: [4, 6, 4]},
    {brand: 'discover', label: 'Discover', pattern: /^(6011|64[4-9]|65)/, lengths: [16],
     cvc: 3},
    {brand: 'jcb', label: 'JCB', pattern: /^35/, lengths: [16], cvc: 3},
    {brand: 'mastercard', label: 'Mastercard',
     pattern: /^(5[1-5]|222[1-9]|22[3-9]|2[3-6]|27[01]|2720)/, lengths: [16], cvc: 3},
    {brand: 'unionpay', label: 'UnionPay', pattern: /^62/, lengths: [16, 17, 18, 19],
     cvc: 3},
    {brand: 'visa', label: 'Visa', pattern: /^4/, lengths: [16], cvc: 3},
  ];
  const UNKNOWN_BRAND = {brand: 'unknown', label: '', pattern: null,
                         lengths: [16], cvc: 3};

  function detectBrand(digits) {
    return BRANDS.find((b) => b.pattern.test(digits)) || UNKNOWN_BRAND;
  }

  function digitsOf(value) {
    return String(value || '').replace(/\D/g, '');
  }

  function luhnValid(digits) {
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = Number(digits[digits.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) {
          d -= 9;
        }
      }
      sum += d;
    }
    return digits.length > 0 && sum % 10 === 0;
  }

  // -------------------------------------------------------------------------
  // Formatting as the customer types ("4242 4242 4242 4242", "12 / 34")
  // -------------------------------------------------------------------------
  function formatNumber(digits, brand) {
    const max = Math.max.apply(null, brand.lengths);
    digits = digits.slice(0, max);
    const groups = brand.groups || [4, 4, 4, 4, 3];
    const parts = [];
    let rest = digits;
    for (let i = 0; rest.length > 0; i++) {
      const size = groups[Math.min(i, groups.length - 1)];
      parts.push(rest.slice(0, size));
      rest = rest.slice(size);
    }
    return parts.join(' ');
  }

  function formatExpiry(digits) {
    // "4" can only mean April: show it as "04".
    if (digits.length === 1 && Number(digits) > 1) {
      digits = '0' + digits;
    }
    digits = digits.slice(0, 4);
    return digits.length > 2 ? digits.slice(0, 2) + ' / ' + digits.slice(2) : digits;
  }

  // Re-format an input while keeping the caret after the same digit.
  function reformat(input, formatted) {
    if (input.value === formatted) {
      return;
    }
    const caret = input.selectionStart === null ? input.value.length : input.selectionStart;
    const digitsBeforeCaret = digitsOf(input.value.slice(0, caret)).length;
    input.value = formatted;
    let position = 0;
    let seen = 0;
    while (position < formatted.length && seen < digitsBeforeCaret) {
      if (/\d/.test(formatted[position])) {
        seen += 1;
      }
      position += 1;
    }
    if (document.activeElement === input) {
      input.setSelectionRange(position, position);
    }
  }

  // -------------------------------------------------------------------------
  // Validation, with Stripe's codes and messages
  // -------------------------------------------------------------------------
  function readCard() {
    const number = digitsOf(inputs.number.value);
    const brand = detectBrand(number);
    const expiry = digitsOf(inputs.expiry.value);
    return {
      number: number,
      brand: brand,
      expMonth: expiry.slice(0, 2),
      expYear: expiry.length === 4 ? '20' + expiry.slice(2, 4) : '',
      expiryDigits: expiry,
      cvc: digitsOf(inputs.cvc.value),
      postal: inputs.postal.value.trim(),
    };
  }

  // Returns {code, message} or null for one field.
  function fieldError(field, card) {
    switch (field) {
      case 'number':
        if (card.number.length < Math.min.apply(null, card.brand.lengths)) {
          return {code: 'incomplete_number', message: 'Your card number is incomplete.'};
        }
        if (!luhnValid(card.number)) {
          return {code: 'invalid_number', message: 'Your card number is invalid.'};
        }
        return null;
      case 'expiry': {
        if (card.expiryDigits.length < 4) {
          return {code: 'incomplete_expiry',
                  message: 'Your card\'s expiration date is incomplete.'};
        }
        const month = Number(card.expMonth);
        const year = Number(card.expYear);
        const now = new Date();
        if (month < 1 || month > 12) {
          return {code: 'invalid_expiry_month',
                  message: 'Your card\'s expiration date is invalid.'};
        }
        if (year < now.getFullYear()) {
          return {code: 'invalid_expiry_year_past',
                  message: 'Your card\'s expiration year is in the past.'};
        }
        if (year === now.getFullYear() && month < now.getMonth() + 1) {
          return {code: 'invalid_expiry_month_past',
                  message: 'Your card\'s expiration date is in the past.'};
        }
        if (year > now.getFullYear() + 50) {
          return {code: 'invalid_expiry_year',
                  message: 'Your card\'s expiration year is invalid.'};
        }
        return null;
      }
      case 'cvc':
        if (card.cvc.length < card.brand.cvc) {
          return {code: 'incomplete_cvc',
                  message: 'Your card\'s security code is incomplete.'};
        }
        return null;
      case 'postal':
        if (card.postal.length === 0) {
          return {code: 'incomplete_zip', message: 'Your postal code is incomplete.'};
        }
        return null;
      default:
        return null;
    }
  }

  function showError(field, error) {
    errors[field].textContent = error ? error.message : '';
    inputs[field].setAttribute('aria-invalid', error ? 'true' : 'false');
  }

  // Stripe shows a field's error once the customer leaves it (or as soon
  // as a full-length number fails the checksum), never while typing.
  function refreshErrors(card) {
    activeFields.forEach((field) => {
      const error = fieldError(field, card);
      const value = inputs[field].value.trim();
      const fullNumber = field === 'number' && error && error.code === 'invalid_number';
      if (!error) {
        showError(field, null);
      } else if ((touched[field] && value) || fullNumber) {
        showError(field, error);
      } else if (!value || document.activeElement === inputs[field]) {
        showError(field, null);
      }
    });
  }

  let lastChange = null;

  function notifyChange() {
    const card = readCard();
    const complete = activeFields.every((field) => !fieldError(field, card));
    const empty = activeFields.every((field) => inputs[field].value.trim() === '');
    const change = {complete: complete, empty: empty, brand: card.brand.brand};
    const key = JSON.stringify(change);
    if (key !== lastChange) {
      lastChange = key;
      post(Object.assign({type: 'change'}, change));
    }
    reportSize();
  }

  function onInput(field) {
    post({type: 'edited'});
    const input = inputs[field];
    const card = readCard();
    if (field === 'number') {
      reformat(input, formatNumber(card.number, card.brand));
      brandBadge.textContent = card.brand.label;
      const afterFormat = readCard();
      inputs.cvc.maxLength = afterFormat.brand.cvc;
      if (afterFormat.brand.lengths.indexOf(afterFormat.number.length) !== -1 &&
          Math.max.apply(null, afterFormat.brand.lengths) === afterFormat.number.length &&
          luhnValid(afterFormat.number)) {
        inputs.expiry.focus();    // auto-advance, as Stripe does
      }
    } else if (field === 'expiry') {
      reformat(input, formatExpiry(card.expiryDigits));
      if (digitsOf(input.value).length === 4 && !fieldError('expiry', readCard())) {
        inputs.cvc.focus();
      }
    } else if (field === 'cvc') {
      reformat(input, card.cvc.slice(0, card.brand.cvc));
    } else if (field === 'postal') {
      reformat(input, input.value.replace(/[^0-9A-Za-z \-]/g, '').toUpperCase());
    }
    refreshErrors(readCard());
    notifyChange();
  }

  ALL_FIELDS.forEach((field) => {
    inputs[field].addEventListener('input', () => onInput(field));
    inputs[field].addEventListener('blur', () => {
      touched[field] = true;
      refreshErrors(readCard());
      reportSize();
    });
  });

  // Focus / blur of the element as a whole.
  let hasFocus = false;
  form.addEventListener('focusin', () => {
    if (!hasFocus) {
      hasFocus = true;
      post({type: 'focus'});
    }
  });
  form.addEventListener('focusout', (event) => {
    if (!event.relatedTarget || !form.contains(event.relatedTarget)) {
      hasFocus = false;
      post({type: 'blur'});
    }
  });

  // Enter submits the parent page's form (the parent decides what that means).
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    post({type: 'submit'});
  });
  ALL_FIELDS.forEach((field) => {
    inputs[field].addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        post({type: 'submit'});
      }
    });
  });

  // -------------------------------------------------------------------------
  // Size: the parent sizes the iframe to our content.
  // -------------------------------------------------------------------------
  let lastHeight = 0;
  function reportSize() {
    // The form's own box (plus the body's padding), not the viewport-sized root.
    const style = window.getComputedStyle(document.body);
    const height = Math.ceil(form.getBoundingClientRect().height +
                             parseFloat(style.paddingTop) + parseFloat(style.paddingBottom));
    // Skip transient zero-width layouts (the parent is being re-laid out).
    if (height && height !== lastHeight && window.innerWidth > 40) {
      lastHeight = height;
      post({type: 'resize', height: height});
    }
  }
  if (window.ResizeObserver) {
    new ResizeObserver(reportSize).observe(document.body);
  }

  // -------------------------------------------------------------------------
  // Validation on request, and the PaymentMethod
  // -------------------------------------------------------------------------

  // Show every field's error and return the first as a validation_error.
  function validateAll() {
    activeFields.forEach((field) => {
      touched[field] = true;
    });
    const card = readCard();
    let first = null;
    activeFields.forEach((field) => {
      const error = fieldError(field, card);
      showError(field, error);
      if (error && !first) {
        first = {type: 'validation_error', code: error.code, message: error.message,
                 param: field};
        inputs[field].focus();
      }
    });
    reportSize();
    return first;
  }

  function setDisabled(disabled) {
    activeFields.forEach((field) => {
      inputs[field].disabled = disabled;
    });
  }

  function appendParams(search, value, prefix) {
    if (value === undefined || value === null) {
      return;
    }
    if (typeof value === 'object') {
      Object.keys(value).forEach((key) => appendParams(search, value[key], prefix + '[' + key + ']'));
    } else {
      search.append(prefix, String(value));
    }
  }

  async function createPaymentMethod(billingDetails) {
    const invalid = validateAll();
    if (invalid) {
      return {error: invalid};
    }
    const card = readCard();
    const body = new URLSearchParams();
    body.append('key', KEY);
    body.append('type', 'card');
    body.append('card[number]', card.number);
    body.append('card[exp_month]', String(Number(card.expMonth)));
    body.append('card[exp_year]', card.expYear);
    body.append('card[cvc]', card.cvc);
    const billing = Object.assign({}, billingDetails || {});
    billing.address = Object.assign({}, billing.address || {});
    if (!billing.address.postal_code && activeFields.indexOf('postal') !== -1) {
      billing.address.postal_code = card.postal;
    }
    appendParams(body, billing, 'billing_details');

    setDisabled(true);
    try {
      let response;
      try {
        response = await fetch(API_BASE + '/v1/payment_methods', {
          method: 'POST',
          headers: {'Content-Type': 'application/x-www-form-urlencoded'},
          body: body.toString(),
          credentials: 'omit',
        });
      } catch (err) {
        return {error: {type: 'api_connection_error',
                        message: 'An error occurred with our connection to Stripe. ' +
                                 'Request was retried 0 times.'}};
      }
      let data = null;
      try {
        data = await response.json();
      } catch (err) {
        data = null;
      }
      if (response.ok && data && !data.error) {
        return {paymentMethod: data};
      }
      const error = Object.assign({}, (data && data.error) || {});
      error.type = error.type || (response.status >= 500 ? 'api_error' : 'invalid_request_error');
      error.message = error.message || 'An unexpected error occurred.';
      return {error: error};
    } finally {
      setDisabled(false);
    }
  }

  function clearFields() {
    ALL_FIELDS.forEach((field) => {
      inputs[field].value = '';
      touched[field] = false;
      showError(field, null);
    });
    brandBadge.textContent = '';
    post({type: 'edited'});
    notifyChange();
  }

  // Payment Element options: fields.billingDetails (or .address, or
  // .address.postalCode) = 'never' hides the postal code, as in Stripe; the
  // page then passes billing_details.address.postal_code when confirming.
  function applyOptions(options) {
    const billing = options && options.fields && options.fields.billingDetails;
    const address = billing && typeof billing === 'object' ? billing.address : billing;
    const postal = address && typeof address === 'object' ? address.postalCode : address;
    const hidePostal = postal === 'never';
    inputs.postal.closest('.field').hidden = hidePostal;
    activeFields = ALL_FIELDS.filter((field) => !(hidePostal && field === 'postal'));
    notifyChange();
  }

  // Appearance API subset: variables become CSS custom properties.
  function applyAppearance(appearance) {
    const variables = (appearance && appearance.variables) || {};
    Object.keys(variables).forEach((name) => {
      if (/^[A-Za-z]+$/.test(name)) {
        document.documentElement.style.setProperty('--' + name, String(variables[name]));
      }
    });
    reportSize();
  }

  function formatAmount(amount, currency, locale) {
    try {
      const format = new Intl.NumberFormat(locale && locale !== 'auto' ? locale : undefined,
                                           {style: 'currency', currency: currency.toUpperCase()});
      const digits = format.resolvedOptions().maximumFractionDigits;
      return format.format(amount / Math.pow(10, digits));
    } catch (err) {
      return amount + ' ' + currency;
    }
  }

  // Elements created with mode: show what the customer is paying, and the terms
  // Stripe shows when the card is saved for later (setupFutureUsage, mode 'setup').
  function applyIntent(intent) {
    intent = intent || {};
    const paying = intent.mode && intent.mode !== 'setup' && intent.currency &&
      typeof intent.amount === 'number';
    summary.hidden = !paying;
    summary.textContent = paying
      ? 'Total: ' + formatAmount(intent.amount, intent.currency, intent.locale) : '';
    const saving = intent.mode === 'setup' || !!intent.setupFutureUsage;
    terms.hidden = !saving;
    terms.textContent = saving
      ? 'By providing your card information, you allow this business to charge your card ' +
        'for future payments in accordance with their terms.' : '';
    reportSize();
  }

  function respond(requestId, result) {
    post({type: 'response', requestId: requestId, result: result});
  }

  window.addEventListener('message', async (event) => {
    if (event.source !== window.parent) {
      return;
    }
    if (PARENT_ORIGIN !== '*' && event.origin !== PARENT_ORIGIN) {
      return;
    }
    const data = event.data;
    if (!data || data.source !== MESSAGE_SOURCE) {
      return;
    }
    switch (data.type) {
      case 'init':
        applyAppearance(data.appearance);
        applyOptions(data.options);
        applyIntent(data.intent);
        post({type: 'ready'});
        lastHeight = 0;
        reportSize();
        notifyChange();
        break;
      case 'update':
        if (data.appearance) {
          applyAppearance(data.appearance);
        }
        if (data.options) {
          applyOptions(data.options);
        }
        if (data.intent) {
          applyIntent(data.intent);
        }
        if (data.requestId) {
          respond(data.requestId, {});
        }
        break;
      case 'focus':
        inputs.number.focus();
        break;
      case 'blur':
        if (document.activeElement && document.activeElement.blur) {
          document.activeElement.blur();
        }
        break;
      case 'clear':
        clearFields();
        break;
      case 'validate': {
        const invalid = validateAll();
        respond(data.requestId, invalid ? {error: invalid} : {});
        break;
      }
      case 'createPaymentMethod':
        respond(data.requestId, await createPaymentMethod(data.billing_details));
        break;
      default:
        break;
    }
  });

  post({type: 'loaded'});
})();
