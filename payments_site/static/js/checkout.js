/*
 * The checkout page: Stripe's Payment Element in deferred mode for a new card, or a saved card
 * confirmed by the server (3-D Secure finished with handleNextAction). Data comes from the
 * <script type="application/json" id="checkout-config"> block (no inline script: CSP).
 *
 * Nothing is created until Pay: the Payment Element is mounted with the cart's amount and
 * currency and no client secret (stripe.elements({mode: 'payment', ...})); a quantity change
 * only updates the cart and the amount the Element shows. On Pay the card form is validated
 * (elements.submit()), the server creates the payment and its PaymentIntent for the cart as
 * it is then, and the page confirms it (stripe.confirmPayment({elements, clientSecret})).
 *
 * One Pay click = one attempt: every request carries this page's attempt token, so double
 * clicks, retries after a decline and lost answers reach the same payment; opening the
 * checkout page again is a new purchase.
 */
(function () {
  'use strict';

  const configEl = document.getElementById('checkout-config');
  const form = document.getElementById('payment-form');
  if (!configEl || !form) {
    return;
  }
  const config = JSON.parse(configEl.textContent);
  const {csrfToken, postJson, errorMessage} = window.shopApi;

  // The page's elements, by the names this script uses for them.
  const ids = {
    payButton: 'pay-button', payLabel: 'pay-label', spinner: 'pay-spinner',
    errorBox: 'payment-error', statusBox: 'payment-status', newCardBox: 'new-card',
    saveBox: 'save-card', loadingNote: 'payment-element-loading', cartTotal: 'cart-total',
    cartStatus: 'cart-status', recentBox: 'recent-purchase',
    recentText: 'recent-purchase-text', repeatBox: 'confirm-repeat',
  };
  const {payButton, payLabel, spinner, errorBox, statusBox, newCardBox, saveBox, loadingNote,
         cartTotal, cartStatus, recentBox, recentText, repeatBox} = Object.fromEntries(
    Object.entries(ids).map(([name, id]) => [name, document.getElementById(id)]));
  const qtyForms = Array.prototype.slice.call(document.querySelectorAll('.qty-form'));
  const choices = Array.prototype.slice.call(form.querySelectorAll('input[name="payment_choice"]'));

  let cart = {
    items: config.cart.lines.map((id, i) => ({product_id: id, quantity: config.cart.quantities[i]})),
    amount: config.cart.amount,
    currency: config.cart.currency,
    totalDisplay: config.cart.totalDisplay,
  };
  let recentPurchase = config.recentPurchase;
  let busy = false;
  let cartBusy = false;
  let elementReady = false;

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

  function repeatConfirmed() {
    return !recentPurchase || (repeatBox && repeatBox.checked);
  }

  function updatePayButton() {
    const ready = selectedChoice() !== 'new' || elementReady;
    payButton.disabled = busy || cartBusy || !ready || !repeatConfirmed();
  }

  function payText() {
    return 'Pay ' + cart.totalDisplay;
  }

  function setBusy(value, label) {
    busy = value;
    payButton.setAttribute('aria-busy', value ? 'true' : 'false');
    spinner.classList.toggle('hidden', !value);
    payLabel.textContent = value ? (label || 'Processing…') : payText();
    choices.forEach((input) => { input.disabled = value; });
    if (saveBox) {
      saveBox.disabled = value;
    }
    qtyForms.forEach((qtyForm) => {
      Array.prototype.forEach.call(qtyForm.elements, (field) => { field.disabled = value; });
    });
    updatePayButton();
  }

  function minutesAgo(iso) {
    const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
    if (minutes < 1) {
      return 'less than a minute ago';
    }
    return minutes === 1 ? '1 minute ago' : minutes + ' minutes ago';
  }

  function showRecentPurchase() {
    if (!recentBox) {
      return;
    }
    recentBox.classList.toggle('hidden', !recentPurchase);
    if (recentPurchase) {
      recentText.textContent = '';
      recentText.append('You bought this ' + minutesAgo(recentPurchase.succeeded_at) + ': ');
      const link = document.createElement('a');
      link.href = recentPurchase.url;
      link.textContent = 'see that payment';
      recentText.append(link, '. Pay again?');
    } else if (repeatBox) {
      repeatBox.checked = false;
    }
  }

  // POST /api/payments/process with this page's attempt token: the same payment every time
  // for this cart and card, however often it is sent.
  function processPayment(paymentMethodId) {
    const body = {
      items: cart.items,
      save_payment_method: paymentMethodId ? false : Boolean(saveBox && saveBox.checked),
      checkout_attempt: config.checkoutAttempt,
    };
    if (paymentMethodId) {
      body.payment_method_id = paymentMethodId;
    }
    return postJson(config.processUrl, body);
  }

  function goToResult(payment) {
    const url = new URL(config.completeUrl);
    url.searchParams.set('payment', payment.id);
    window.location.assign(url.toString());
  }

  function finished(payment) {
    return payment && (payment.status === 'succeeded' || payment.status === 'processing');
  }

  // --- the Payment Element (deferred: no PaymentIntent until Pay) ---------------------------

  let stripe = null;
  let elements = null;
  try {
    stripe = window.Stripe(config.publishableKey);
  } catch (err) {
    showError('The secure payment form could not load. Please reload the page.');
  }

  function mountPaymentElement() {
    if (!stripe || elements) {
      return;
    }
    const options = {mode: 'payment', amount: cart.amount, currency: cart.currency};
    if (saveBox && saveBox.checked) {
      options.setupFutureUsage = 'off_session';
    }
    elements = stripe.elements(options);
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
    const submitted = await elements.submit();
    if (submitted.error) {
      showError(submitted.error.message || 'Check your card details.');
      return false;
    }
    const result = await processPayment(null);
    if (result.status !== 201) {
      showError(errorMessage(result.data));
      return false;
    }
    const payment = result.data.payment;
    if (finished(payment)) {
      goToResult(payment);   // this attempt was already paid (a lost answer, a double click)
      return true;
    }
    const url = new URL(config.completeUrl);
    url.searchParams.set('payment', payment.id);
    const confirmed = await stripe.confirmPayment({
      elements: elements,
      clientSecret: result.data.client_secret,
      confirmParams: {return_url: url.toString()},
      redirect: 'if_required',
    });
    if (confirmed.error) {
      // Declined or authentication failed: the next Pay retries the same payment.
      showError(confirmed.error.message || 'Your card was declined.');
      return false;
    }
    showStatus('Payment received. Finishing up…');
    goToResult(payment);
    return true;
  }

  // --- a saved card: the server confirms ------------------------------------------------------

  async function payWithSavedCard(paymentMethodId) {
    const result = await processPayment(paymentMethodId);
    if (result.status !== 201) {
      showError(errorMessage(result.data, result.status === 402 ? 'Your card was declined.' : null));
      return false;
    }
    const data = result.data;
    if (data.requires_action) {
      setBusy(true, 'Waiting for your bank…');
      const action = await stripe.handleNextAction({clientSecret: data.client_secret});
      if (action.error) {
        showError(action.error.message || 'We could not authenticate your payment.');
        return false;
      }
      goToResult(data.payment);
      return true;
    }
    if (data.payment.status === 'failed') {
      showError((data.payment.failure && data.payment.failure.message) ||
                'Your card was declined.');
      return false;
    }
    showStatus('Payment received. Finishing up…');
    goToResult(data.payment);
    return true;
  }

  // --- the cart: quantities change the amount, nothing else --------------------------------

  function applyCart(state) {
    cart = {
      items: state.lines.map((line) => ({product_id: line.product_id, quantity: line.quantity})),
      amount: state.amount,
      currency: state.currency,
      totalDisplay: state.total_display,
    };
    state.lines.forEach((line) => {
      const row = document.querySelector('tr[data-product-id="' + line.product_id + '"]');
      if (row) {
        row.querySelector('.line-total').textContent = line.total_display;
        row.querySelector('.qty-input').value = String(line.quantity);
      }
    });
    document.querySelectorAll('tr[data-product-id]').forEach((row) => {
      const id = Number(row.getAttribute('data-product-id'));
      if (!state.lines.some((line) => line.product_id === id)) {
        row.remove();
      }
    });
    cartTotal.textContent = state.total_display;
    cartStatus.textContent = 'Cart updated. Total ' + state.total_display + '.';
    recentPurchase = state.recent_purchase;
    showRecentPurchase();
    if (elements) {
      elements.update({amount: state.amount, currency: state.currency});
    }
    payLabel.textContent = payText();
  }

  async function updateQuantity(qtyForm, action) {
    if (busy || cartBusy) {
      return;
    }
    clearMessages();
    const data = new FormData(qtyForm);
    data.set('action', action);
    cartBusy = true;
    updatePayButton();
    let response;
    try {
      response = await fetch(config.cartUpdateUrl, {
        method: 'POST', credentials: 'same-origin', body: data,
        headers: {'Accept': 'application/json', 'X-CSRFToken': csrfToken},
      });
    } catch (err) {
      cartBusy = false;
      updatePayButton();
      showError('We could not update your cart. Check your connection and try again.');
      return;
    }
    let body = {};
    try {
      body = await response.json();
    } catch (err) {
      body = {};
    }
    cartBusy = false;
    if (!response.ok || !body.cart) {
      updatePayButton();
      showError(errorMessage(body, 'We could not update your cart.'));
      return;
    }
    if (!body.cart.lines.length || body.cart.problem) {
      window.location.reload();   // empty, or a total that cannot be charged: the page says why
      return;
    }
    applyCart(body.cart);
    updatePayButton();
  }

  qtyForms.forEach((qtyForm) => {
    qtyForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const action = event.submitter && event.submitter.value === 'remove' ? 'remove' : 'update';
      updateQuantity(qtyForm, action);
    });
    const input = qtyForm.querySelector('.qty-input');
    input.addEventListener('change', () => updateQuantity(qtyForm, 'update'));
  });

  // --- wiring -------------------------------------------------------------------------------

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy || cartBusy || !repeatConfirmed()) {
      return;
    }
    clearMessages();
    setBusy(true);
    let navigating = false;
    try {
      const choice = selectedChoice();
      navigating = choice === 'new' ? await payWithNewCard() : await payWithSavedCard(choice);
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
      if (isNew) {
        mountPaymentElement();
      }
      updatePayButton();
    });
  });

  if (saveBox) {
    saveBox.addEventListener('change', () => {
      if (elements) {
        elements.update({setupFutureUsage: saveBox.checked ? 'off_session' : null});
      }
    });
  }

  if (repeatBox) {
    repeatBox.addEventListener('change', updatePayButton);
  }

  showRecentPurchase();
  if (selectedChoice() === 'new') {
    mountPaymentElement();
  }
  updatePayButton();
})();
