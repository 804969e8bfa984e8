// The API as the page calls it: JSON requests with the CSRF token, errors
// thrown with the server's message, and the URLs the template gives.
const app = document.querySelector("#app");

export const api = app.dataset.api; // api/conversations

function csrfToken() {
  return document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
}

export async function call(method, url, body, extra = {}) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), ...extra.headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: extra.signal,
  });
  if (!response.ok) {
    const error = await response.json().catch(() => null);
    throw new Error(error?.error?.message ?? `The server answered ${response.status}.`);
  }
  return response;
}

export const getJSON = async (url) => (await call("GET", url)).json();

// A POST whose answer is an answer's SSE stream (messages, regenerate, edit,
// continue).
export const openStream = (url, body, signal) =>
  call("POST", url, body, { signal, headers: { Accept: "text/event-stream" } });

export const conversationUrl = (id) => `${api}/${id}`;

export const exportUrl = (id, format) => `${api}/${id}/export?format=${format}`;

// A turn's URLs: data-cancel is .../api/turns/TURN/cancel, and the turn's
// other actions sit beside it (regenerate, edit, continue, feedback).
export const turnUrl = (id, action) => app.dataset.cancel.replace("TURN", id).replace(/cancel$/, action);

export const eventsUrl = (id) => app.dataset.events.replace("TURN", id);
