// The saved-cards page: add a card with Stripe's Payment Element (setup mode), and
// confirm removals in a dialog. Card data goes from Stripe's iframe to Stripe only.
(() => {
  'use strict';

  const {postJson, errorMessage} = window.shopApi;

  // --- Add a card -----------------------------------------------------------------------
  const form = document.getElementById('add-card-form');
  if (form) {
    const errorBox = document.getElementById('card-error');
    const statusBox = document.getElementById('card-status');
    const button = document.getElementById('save-card');
    const loading = document.getElementById('payment-element-loading');
    const makeDefault = document.getElementById('make-default');
    let stripe = null;
    let elements = null;

    const showError = (message) => {
      errorBox.textContent = message;
      errorBox.classList.remove('hidden');
    };
    const clearError = () => {
      errorBox.textContent = '';
      errorBox.classList.add('hidden');
    };
    const busy = (isBusy, message) => {
      button.disabled = isBusy;
      statusBox.textContent = message || '';
    };

    async function start() {
      if (typeof window.Stripe !== 'function') {
        if (loading) { loading.remove(); }
        showError('The secure card form could not load. Check your connection and reload the page.');
        return;
      }
      const created = await postJson(form.dataset.setupIntentUrl, {});
      if (!created.ok) {
        if (loading) { loading.remove(); }
        showError(errorMessage(created.data, 'We could not start adding a card. Please reload the page.'));
        return;
      }
      stripe = window.Stripe(form.dataset.publishableKey);
      elements = stripe.elements({clientSecret: created.data.client_secret,
                                  appearance: {variables: {colorPrimary: '#3b4cca'}}});
      const paymentElement = elements.create('payment');
      paymentElement.on('ready', () => {
        if (loading) { loading.remove(); }
        button.disabled = false;
        form.dataset.ready = '1';
      });
      paymentElement.mount('#payment-element');
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!stripe || !elements) { return; }
      clearError();
      busy(true, 'Checking your card…');
      const result = await stripe.confirmSetup({
        elements: elements,
        confirmParams: {return_url: form.dataset.returnUrl},
        redirect: 'if_required',
      });
      if (result.error) {
        // Declines and failed authentication leave the SetupIntent reusable: try again.
        busy(false);
        showError(result.error.message || 'Your card could not be saved.');
        return;
      }
      if (!result.setupIntent || result.setupIntent.status !== 'succeeded') {
        busy(false);
        showError('Your card could not be verified. Please try again or use another card.');
        return;
      }
      busy(true, 'Saving your card…');
      const saved = await postJson(form.dataset.saveUrl, {
        setup_intent_id: result.setupIntent.id,
        make_default: Boolean(makeDefault && makeDefault.checked),
      });
      if (!saved.ok) {
        busy(false);
        showError(errorMessage(saved.data, 'Your card could not be saved. Please try again.'));
        return;
      }
      const next = new URL(form.dataset.cardsUrl, window.location.href);
      next.searchParams.set('saved', saved.data.payment_method.id);
      window.location.assign(next.toString());
    });

    start();
  }

  // --- Remove a card: confirm in a dialog (the link's own page is the no-dialog fallback) --
  const dialog = document.getElementById('remove-dialog');
  if (dialog && typeof dialog.showModal === 'function') {
    const dialogForm = document.getElementById('remove-dialog-form');
    const text = document.getElementById('remove-dialog-text');
    document.querySelectorAll('[data-remove-card]').forEach((link) => {
      link.addEventListener('click', (event) => {
        event.preventDefault();
        dialogForm.action = link.href;
        text.textContent = link.dataset.cardLabel + ' will be removed from your account. ' +
          'Past payments made with it are kept.';
        dialog.showModal();
        document.getElementById('remove-cancel').focus();
      });
    });
    document.getElementById('remove-cancel').addEventListener('click', () => dialog.close());
  }
})();
