// The AI SDK's own client code against a live chatstream: what useChat does,
// without React. tests/test_ai_sdk.py runs it with one JSON argument:
//   {base, key, chatId, action, text?, messages?, stopAfterChars?}
// and reads one JSON line from stdout: {status, error, messages}.
//
// Actions:
//   read        the transport's request, the stream read by readUIMessageStream
//   send        Chat.sendMessage({text}): useChat's engine (AbstractChat)
//   regenerate  Chat.regenerate() over `messages` (what the client had)
//   resume      Chat.resumeStream(): what useChat({resume: true}) does on mount
//   stop        Chat.sendMessage, then Chat.stop() once stopAfterChars of text came
import { AbstractChat, DefaultChatTransport, readUIMessageStream } from "ai";

const spec = JSON.parse(process.argv[2]);

const transport = new DefaultChatTransport({
  api: `${spec.base}/api/ui/chat`,
  headers: { Authorization: `Bearer ${spec.key}` },
});

// useChat keeps its state in React; this keeps it in a field.
class PlainState {
  constructor(messages = []) {
    this.messages = messages;
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage(message) {
    this.messages = [...this.messages, message];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = this.messages.map((old, i) => (i === index ? structuredClone(message) : old));
  }
  snapshot(value) {
    return structuredClone(value);
  }
}

class Chat extends AbstractChat {
  constructor(messages) {
    super({ id: spec.chatId, transport, state: new PlainState(messages), onError: () => {} });
  }
}

function report(chat) {
  const error = chat.error ? String(chat.error.message ?? chat.error) : null;
  console.log(JSON.stringify({ status: chat.status, error, messages: chat.messages }));
}

function textOf(message) {
  return (message?.parts ?? []).filter((part) => part.type === "text").map((part) => part.text).join("");
}

async function read() {
  const message = { id: "m-user", role: "user", parts: [{ type: "text", text: spec.text }] };
  const stream = await transport.sendMessages({
    chatId: spec.chatId,
    messages: [message],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  let last = null;
  for await (const snapshot of readUIMessageStream({ stream })) last = snapshot;
  console.log(JSON.stringify({ status: "ready", error: null, messages: [message, last] }));
}

async function stopWhenEnoughText(chat, sending) {
  let sent = false;
  sending.finally(() => (sent = true));
  while (!sent) {
    const last = chat.messages.at(-1);
    if (last?.role === "assistant" && textOf(last).length >= spec.stopAfterChars) {
      await chat.stop();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const actions = {
  read,
  async send() {
    const chat = new Chat();
    await chat.sendMessage({ text: spec.text });
    report(chat);
  },
  async regenerate() {
    const chat = new Chat(spec.messages);
    await chat.regenerate();
    report(chat);
  },
  async resume() {
    const chat = new Chat(spec.messages ?? []);
    await chat.resumeStream();
    report(chat);
  },
  async stop() {
    const chat = new Chat();
    const sending = chat.sendMessage({ text: spec.text });
    await stopWhenEnoughText(chat, sending);
    await sending;
    report(chat);
  },
};

await actions[spec.action]();
