/*
 * The checkout page: Stripe's Payment Element for a new card, or a saved card confirmed by
 * the server (3-D Secure finished with handleNextAction). Data comes from the
 * <script type="application/json" id="checkout-config"> block (no inline script: CSP).
 *
 * One checkout attempt = one PaymentIntent: every call to /api/payments/process carries an
 * Idempotency-Key made once per (attempt, body) and kept in sessionStorage, so a reload, a
 * double click or a retried request gets the same payment back.
 */
(function () {
  'use strict';

  const configEl = document.getElementById('checkout-config');
  const form = document.getElementById('payment-form');
  if (!configEl || !form) {
    return;
  }
  const config = JSON.parse(configEl.textContent);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
  const items = config.items.map((id, i) => ({product_id: id, quantity: config.quantities[i]}));

  const payButton = document.getElementById('pay-button');
  const payLabel = document.getElementById('pay-label');
  const spinner = document.getElementById('pay-spinner');
  const errorBox = document.getElementById('payment-error');
  const statusBox = document.getElementById('payment-status');
  const newCardBox = document.getElementById('new-card');
  const saveBox = document.getElementById('save-card');
  const loadingNote = document.getElementById('payment-element-loading');
  const choices = Array.prototype.slice.call(form.querySelectorAll('input[name="payment_choice"]'));

  let stripe = null;
  try {
    stripe = window.Stripe(config.publishableKey);
  } catch (err) {
    showError('The secure payment form could not load. Please reload the page.');
    return;
  }

  let elements = null;
  let elementReady = false;
  let newCard = null;        // {payment, client_secret} for the new-card PaymentIntent
  let newCardSave = null;    // the "save" choice that PaymentIntent was made with
  let busy = false;

  // --- small helpers ------------------------------------------------------------------------

  function showError(message) {
    statusBox.classList.add('hidden');
    errorBox.textContent = message;
    errorBox.classList.remove('hidden');
  }

  function showStatus(message) {
    statusBox.textContent = message;
    statusBox.classList.remove('hidden');
  }

  function clearMessages() {
    errorBox.textContent = '';
    errorBox.classList.add('hidden');
    statusBox.classList.add('hidden');
  }

  function selectedChoice() {
    const checked = choices.find((input) => input.checked);
    return checked ? checked.value : 'new';
  }

  function updatePayButton() {
    const ready = selectedChoice() !== 'new' || (elements !== null && elementReady);
    payButton.disabled = busy || !ready;
  }

  function setBusy(value, label) {
    busy = value;
    payButton.setAttribute('aria-busy', value ? 'true' : 'false');
    spinner.classList.toggle('hidden', !value);
    payLabel.textContent = value ? (label || 'Processing…') : config.payLabel;
    choices.forEach((input) => { input.disabled = value; });
    if (saveBox) {
      saveBox.disabled = value;
    }
    updatePayButton();
  }

  function newKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function storageKey(body) {
    return 'checkout-idempotency:' + config.checkoutToken + ':' + JSON.stringify(body);
  }

  function idempotencyKey(body) {
    const name = storageKey(body);
    let key = null;
    try {
      key = window.sessionStorage.getItem(name);
      if (!key) {
        key = newKey();
        window.sessionStorage.setItem(name, key);
      }
    } catch (err) {
      key = key || newKey();   // storage disabled: still one key for this page's attempt
    }
    return key;
  }

  // After a decline the next click is a new attempt (on the same payment, server-side).
  function forgetKey(body) {
    try {
      window.sessionStorage.removeItem(storageKey(body));
    } catch (err) { /* nothing stored */ }
  }

  function sleep(ms) {
    return new Promise((resolve) => { window.setTimeout(resolve, ms); });
  }

  function errorMessage(data, fallback) {
    return (data && data.error && data.error.message) || fallback ||
      'Something went wrong. Please try again.';
  }

  // POST /api/payments/process; waits out a 409 (the same request is still running).
  async function processPayment(body) {
    const key = idempotencyKey(body);
    for (let attempt = 0; attempt < 15; attempt += 1) {
      let response;
      try {
        response = await fetch(config.processUrl, {
          method: 'POST',
          credentials: 'same-origin',
          headers: {
            'Content-Type': 'application/json',
            'Accept': 'application/json',
            'X-CSRFToken': csrfToken,
            'Idempotency-Key': key,
          },
          body: JSON.stringify(body),
        });
      } catch (err) {
        return {status: 0, data: {error: {message:
          'We could not reach the shop. Check your connection and try again.'}}};
      }
      let data = {};
      try {
        data = await response.json();
      } catch (err) {
        data = {};
      }
      if (response.status === 409) {
        await sleep(700);
        continue;
      }
      return {status: response.status, data: data};
    }
    return {status: 409, data: {error: {message: 'Your payment is still being processed. ' +
      'Please wait a moment and check your payment history.'}}};
  }

  function goToResult(payment) {
    const url = new URL(config.completeUrl);
    url.searchParams.set('payment', payment.id);
    window.location.assign(url.toString());
  }

  function finished(payment) {
    return payment && (payment.status === 'succeeded' || payment.status === 'processing');
  }

  // --- a new card: the Payment Element --------------------------------------------------------

  async function prepareNewCard() {
    if (elements || busy) {
      return;
    }
    setBusy(true, 'Loading…');
    const save = saveBox ? saveBox.checked : false;
    const result = await processPayment({items: items, save_payment_method: save});
    setBusy(false);
    if (result.status !== 201) {
      showError(errorMessage(result.data, 'The payment form could not load. Please reload.'));
      return;
    }
    if (finished(result.data.payment)) {
      goToResult(result.data.payment);   // this cart was paid a moment ago
      return;
    }
    newCard = result.data;
    newCardSave = save;
    elements = stripe.elements({clientSecret: newCard.client_secret});
    const paymentElement = elements.create('payment');
    paymentElement.on('ready', () => {
      elementReady = true;
      if (loadingNote) {
        loadingNote.remove();
      }
      updatePayButton();
    });
    paymentElement.on('change', () => {
      if (!busy) {
        clearMessages();
      }
    });
    paymentElement.mount('#payment-element');
  }

  async function payWithNewCard() {
    const save = saveBox ? saveBox.checked : false;
    if (save !== newCardSave) {
      // Same cart, so the server keeps the same PaymentIntent and only changes whether
      // Stripe sets the card up for future use.
      const changed = await processPayment({items: items, save_payment_method: save});
      if (changed.status !== 201) {
        showError(errorMessage(changed.data));
        return;
      }
      newCard = changed.data;
      newCardSave = save;
    }
    const url = new URL(config.completeUrl);
    url.searchParams.set('payment', newCard.payment.id);
    const result = await stripe.confirmPayment({
      elements: elements,
      confirmParams: {return_url: url.toString()},
      redirect: 'if_required',
    });
    if (result.error) {
      // Declined or authentication failed: the same PaymentIntent takes another try.
      showError(result.error.message || 'Your card was declined.');
      return;
    }
    showStatus('Payment received. Finishing up…');
    goToResult(newCard.payment);
  }

  // --- a saved card: the server confirms ------------------------------------------------------

  async function payWithSavedCard(paymentMethodId) {
    const body = {items: items, payment_method_id: paymentMethodId, save_payment_method: false};
    const result = await processPayment(body);
    if (result.status === 402) {
      forgetKey(body);
      showError(errorMessage(result.data, 'Your card was declined.'));
      return;
    }
    if (result.status !== 201) {
      if (result.status >= 400 && result.status < 500) {
        forgetKey(body);
      }
      showError(errorMessage(result.data));
      return;
    }
    const data = result.data;
    if (data.requires_action) {
      setBusy(true, 'Waiting for your bank…');
      const action = await stripe.handleNextAction({clientSecret: data.client_secret});
      if (action.error) {
        forgetKey(body);
        showError(action.error.message || 'We could not authenticate your payment.');
        return;
      }
      goToResult(data.payment);
      return;
    }
    if (data.payment.status === 'failed') {
      forgetKey(body);
      showError((data.payment.failure && data.payment.failure.message) ||
                'Your card was declined.');
      return;
    }
    showStatus('Payment received. Finishing up…');
    goToResult(data.payment);
  }

  // --- wiring -------------------------------------------------------------------------------

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) {
      return;
    }
    clearMessages();
    setBusy(true);
    let navigating = false;
    try {
      const choice = selectedChoice();
      if (choice === 'new') {
        await payWithNewCard();
      } else {
        await payWithSavedCard(choice);
      }
      navigating = !errorBox.textContent;
    } catch (err) {
      showError('Something went wrong. Please try again.');
    } finally {
      // Keep the button disabled while the browser moves to the result page.
      if (!navigating) {
        setBusy(false);
      }
    }
  });

  choices.forEach((input) => {
    input.addEventListener('change', () => {
      clearMessages();
      const isNew = selectedChoice() === 'new';
      newCardBox.classList.toggle('hidden', !isNew);
      updatePayButton();
      if (isNew) {
        prepareNewCard();
      }
    });
  });

  updatePayButton();
  if (selectedChoice() === 'new') {
    prepareNewCard();
  }
})();
