// The API as the page calls it: JSON requests with the CSRF token, errors
// thrown with the server's message, and the URLs the template gives.
const app = document.querySelector("#app");

export const api = app.dataset.api; // api/conversations
const filesApi = app.dataset.files; // api/files

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
    // `param`: the field a 400 names (instructions.js shows the message beside it).
    throw Object.assign(new Error(errorMessage(error, response.status)), { param: error?.error?.param });
  }
  return response;
}

const errorMessage = (body, status) => body?.error?.message ?? `The server answered ${status}.`;

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

export const fileUrl = (id) => `${filesApi}/${id}`;

export const fileContentUrl = (id) => `${fileUrl(id)}/content`;

// One file sent as multipart/form-data. XMLHttpRequest, not fetch: only it
// reports an upload's progress (`onProgress(fraction)`). Resolves with the
// file's metadata; rejects with the server's message, or an AbortError once
// `signal` aborts.
export function uploadFile(file, { onProgress, signal }) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", filesApi);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => event.lengthComputable && onProgress(event.loaded / event.total));
    request.addEventListener("load", () => {
      if (request.status === 201) resolve(request.response);
      else reject(new Error(errorMessage(request.response, request.status)));
    });
    request.addEventListener("error", () => reject(new Error("The upload failed: the connection was lost.")));
    request.addEventListener("abort", () => reject(new DOMException("The upload was cancelled.", "AbortError")));
    signal.addEventListener("abort", () => request.abort());
    const body = new FormData();
    body.append("file", file);
    request.send(body);
  });
}
