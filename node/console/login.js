// Sign-in. The answer's session token is not kept (the HttpOnly cookie carries the session);
// only the CSRF token is, in memory. The password field is emptied after every attempt.

import { api, ApiError } from './api.js';
import { fill, h } from './dom.js';

export function showLogin(main, { message = '', onSignedIn }) {
  const error = h('p', { class: 'login-error', id: 'login-error', role: 'alert', text: message });
  const username = h('input', { type: 'text', id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', id: 'sign-in', text: 'Sign in' });
  const form = h(
    'form',
    {
      class: 'login-form',
      'aria-labelledby': 'login-title',
      novalidate: true,
      on: {
        submit: async (e) => {
          e.preventDefault();
          if (!username.value || !password.value) {
            error.textContent = 'Enter your username and password.';
            (username.value ? password : username).focus();
            return;
          }
          button.disabled = true;
          error.textContent = '';
          try {
            const answer = await api('POST', '/v1/session', { username: username.value, password: password.value });
            password.value = '';
            onSignedIn({ username: answer.username, role: answer.role, csrf_token: answer.csrf_token });
          } catch (err) {
            password.value = '';
            error.textContent =
              err instanceof ApiError && err.status === 401
                ? 'Wrong username or password.'
                : err instanceof ApiError && err.status === 429
                  ? err.message
                  : `Could not sign in: ${err.message}`;
            password.focus();
          } finally {
            button.disabled = false;
          }
        },
      },
    },
    h('h1', { id: 'login-title', text: 'Duty officer sign-in' }),
    h('p', { class: 'hint', text: 'Heliograph secure alerting console. Use your agency officer account.' }),
    h('div', { class: 'field' }, h('label', { for: 'username', text: 'Username' }), username),
    h('div', { class: 'field' }, h('label', { for: 'password', text: 'Password' }), password),
    error,
    button,
  );
  fill(main, h('div', { class: 'login' }, form));
  username.focus();
}
