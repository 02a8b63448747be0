// voxloop's web page: connect to the dev server's bot with the published Pipecat client, talk to
// it, read what was heard and said. No framework: a handful of DOM updates driven by the client's
// callbacks.

import { PipecatClient } from "@pipecat-ai/client-js";
import { TRANSPORTS, transportById } from "./transports.js";
import { Conversation } from "./conversation.js";

const MAX_EVENTS = 2000; // the test hook keeps the latest events only: bounded on a long call
const ACTIVITY_ROWS = 60;

/** Every client callback the page records (names as the client spells them). */
const RECORDED_CALLBACKS = [
  "onTransportStateChanged", "onConnected", "onDisconnected", "onError", "onMessageError",
  "onBotStarted", "onBotConnected", "onBotReady", "onBotDisconnected", "onServerMessage", "onMetrics",
  "onParticipantJoined", "onParticipantLeft",
  "onMicUpdated", "onAvailableMicsUpdated", "onDeviceError", "onMediaStateChanged",
  "onTrackStarted", "onTrackStopped", "onUnsupportedFeature",
  "onUserStartedSpeaking", "onUserStoppedSpeaking", "onBotStartedSpeaking", "onBotStoppedSpeaking",
  "onUserMuteStarted", "onUserMuteStopped", "onUserTranscript", "onUserLlmText", "onBotOutput",
  "onBotLlmStarted", "onBotLlmStopped", "onBotLlmText", "onBotTtsStarted", "onBotTtsStopped", "onBotTtsText",
  "onLLMFunctionCallStarted", "onLLMFunctionCallInProgress", "onLLMFunctionCallStopped",
];

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  statusText: $("status-text"),
  transports: $("transports"),
  connect: $("connect"),
  mic: $("mic"),
  micLabel: $("mic-label"),
  micLevel: $("mic-level"),
  botLevel: $("bot-level"),
  version: $("fact-version"),
  ready: $("fact-ready"),
  audio: $("fact-audio"),
  activity: $("activity"),
  error: $("error"),
  errorText: $("error-text"),
  errorClose: $("error-close"),
  composer: $("composer"),
  text: $("text"),
  send: $("send"),
};

const conversation = new Conversation($("transcript"), $("empty"));

// The test hook: the client, every callback with its payload, timings and audio figures.
const hook = {
  client: null,
  transport: "websocket",
  events: [],
  timings: {},
  audio: () => media?.snapshot() ?? null,
  errors: [],
};
window.voxloop = hook;

let selected = "websocket";
let client = null;
let media = null;
let botReady = false;
let meterTimer = null;
let pollMedia = null; // WebRTC: refreshes the browser's receive statistics

// ---- events

function plain(value) {
  if (value === undefined) return null;
  if (typeof MediaStreamTrack !== "undefined" && value instanceof MediaStreamTrack) {
    return { kind: value.kind, label: value.label, readyState: value.readyState };
  }
  if (typeof MediaDeviceInfo !== "undefined" && value instanceof MediaDeviceInfo) {
    return { kind: value.kind, label: value.label, deviceId: value.deviceId };
  }
  if (value instanceof Error) return { name: value.name, message: value.message };
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

function record(name, args) {
  const data = args.length > 1 ? args.map(plain) : plain(args[0]);
  const event = { name, data, t: Math.round(performance.now()) };
  hook.events.push(event);
  if (hook.events.length > MAX_EVENTS) hook.events.splice(0, hook.events.length - MAX_EVENTS);
  addActivity(event);
}

function addActivity({ name, data, t }) {
  const row = document.createElement("li");
  const time = document.createElement("span");
  time.className = "activity-time";
  time.textContent = `${(t / 1000).toFixed(2)}s`;
  const label = document.createElement("span");
  label.className = "activity-name";
  label.textContent = name.replace(/^on/, "");
  row.append(time, label);
  if (data !== null && data !== undefined) {
    const detail = document.createElement("span");
    detail.className = "activity-data";
    const text = typeof data === "string" ? data : JSON.stringify(data);
    detail.textContent = text.length > 120 ? `${text.slice(0, 117)}…` : text;
    row.append(detail);
  }
  ui.activity.prepend(row);
  while (ui.activity.childElementCount > ACTIVITY_ROWS) ui.activity.lastElementChild.remove();
}

// ---- reactions to the client

const handlers = {
  onTransportStateChanged(state) {
    if (state === "ready" && hook.timings.connectStart !== undefined) {
      hook.timings.ready = performance.now() - hook.timings.connectStart;
    }
    if (state === "disconnected" || state === "error") sessionEnded();
    render();
  },
  onBotReady(data) {
    botReady = true;
    hook.timings.botReady = performance.now() - hook.timings.connectStart;
    ui.version.textContent = data?.version ?? "?";
    ui.ready.textContent = `${Math.round(hook.timings.botReady)} ms`;
    conversation.note(`Connected over ${transportById(selected).label}`);
    render();
  },
  onDisconnected() {
    sessionEnded();
    render();
  },
  onError(message) {
    const data = message?.data ?? {};
    const text = data.error ?? data.message ?? "Unknown error";
    showError(data.fatal ? `Connection ended: ${text}` : text);
  },
  onMessageError(message) {
    const data = message?.data ?? {};
    showError(`The bot refused a request: ${data.error ?? data.message ?? "unknown reason"}`);
  },
  onDeviceError(error) {
    showError(`Microphone problem: ${error?.message ?? error?.type ?? error}`);
  },
  onTrackStarted(track, participant) {
    // WebRTC: the transport hands over the bot's remote track (no participant) and leaves playing
    // it to the page. The local mic track comes with the local participant.
    if (track?.kind === "audio" && !participant?.local) media?.attachBotTrack?.(track);
  },
  onUserStartedSpeaking: () => conversation.userStarted(),
  onUserTranscript: (data) => conversation.userTranscript(data),
  onBotOutput: (data) => conversation.botOutput(data),
  onBotStoppedSpeaking: () => conversation.botStopped(),
};

function sessionEnded() {
  media?.detachBotTrack?.();
  if (botReady) conversation.note("Disconnected");
  botReady = false;
}

function makeCallbacks() {
  const callbacks = {};
  for (const name of RECORDED_CALLBACKS) {
    callbacks[name] = (...args) => {
      record(name, args);
      try {
        handlers[name]?.(...args);
      } catch (error) {
        console.error(`voxloop: ${name} handler failed`, error);
      }
    };
  }
  return callbacks;
}

function createClient() {
  const entry = transportById(selected);
  const made = entry.create();
  media = made.media;
  pollMedia = made.poll ?? null;
  client = new PipecatClient({
    transport: made.transport,
    enableMic: client ? client.isMicEnabled : true,
    enableCam: false,
    callbacks: makeCallbacks(),
  });
  hook.client = client;
  hook.transport = entry.id;
  return client;
}

// ---- actions

const IDLE_STATES = new Set(["disconnected", "error"]);

async function connect() {
  clearError();
  const entry = transportById(selected);
  // A fresh client per session: nothing from the last call (queues, devices, state) leaks in.
  if (client && client.state !== "disconnected" && client.state !== "initialized") {
    await disconnect();
  }
  if (!client || hook.timings.connectStart !== undefined) createClient();
  hook.timings = { connectStart: performance.now() };
  ui.ready.textContent = "–";
  ui.version.textContent = "–";
  render();
  startMeters();
  try {
    await client.startBotAndConnect(entry.startParams);
  } catch (error) {
    if (client.state !== "disconnected") {
      showError(`Could not connect: ${error?.message ?? error}`);
      await client.disconnect().catch(() => {});
    }
  }
  render();
}

async function disconnect() {
  try {
    await client?.disconnect();
  } catch (error) {
    showError(`Disconnect failed: ${error?.message ?? error}`);
  }
  render();
}

async function toggleMic() {
  if (!client) return;
  const enable = !client.isMicEnabled;
  try {
    await client.enableMic(enable);
  } catch (error) {
    showError(`Could not ${enable ? "unmute" : "mute"} the microphone: ${error?.message ?? error}`);
  }
  render();
}

async function sendText(event) {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !client) return;
  try {
    await client.sendText(text);
    conversation.userTyped(text);
    ui.text.value = "";
  } catch (error) {
    showError(`Message not sent: ${error?.message ?? error}`);
  }
}

// ---- rendering

function showError(text) {
  hook.errors.push(text);
  if (hook.errors.length > 100) hook.errors.shift();
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

function describe(state) {
  if (state === "ready") return botReady ? ["Connected", "live"] : ["Waiting for the bot…", "busy"];
  switch (state) {
    case "initializing":
    case "initialized":
      return hook.timings.connectStart === undefined ? ["Not connected", "idle"] : ["Starting microphone…", "busy"];
    case "authenticating":
    case "authenticated":
      return ["Starting the bot…", "busy"];
    case "connecting":
    case "connected":
      return ["Connecting…", "busy"];
    case "disconnecting":
      return ["Disconnecting…", "busy"];
    case "error":
      return ["Connection error", "error"];
    default:
      return ["Not connected", "idle"];
  }
}

function render() {
  const state = client?.state ?? "disconnected";
  const [text, tone] = describe(state);
  document.body.dataset.state = state;
  ui.status.dataset.tone = tone;
  ui.statusText.textContent = text;

  const idle = IDLE_STATES.has(state) || (tone === "idle" && state !== "disconnecting");
  ui.connect.textContent = idle ? "Connect" : state === "ready" && botReady ? "Disconnect" : "Cancel";
  ui.connect.classList.toggle("danger", !idle);
  ui.connect.disabled = state === "disconnecting";

  const micOn = client ? client.isMicEnabled : true;
  ui.mic.setAttribute("aria-pressed", String(micOn));
  ui.micLabel.textContent = micOn ? "Mic on" : "Mic off";

  const live = state === "ready" && botReady;
  ui.text.disabled = !live;
  ui.send.disabled = !live;
  ui.text.placeholder = live ? "Type a message to the bot…" : "Connect to send a message";
  for (const input of ui.transports.querySelectorAll("input")) {
    input.disabled = !idle;
  }
  if (IDLE_STATES.has(state)) stopMeters();
}

function levelWidth(rms) {
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

let lastMicChunks = 0;
function tickMeters() {
  if (!media) return;
  pollMedia?.();
  const chunks = media.mic.chunks;
  const micRms = chunks !== lastMicChunks && client?.isMicEnabled ? media.mic.level : 0;
  lastMicChunks = chunks;
  ui.micLevel.style.transform = `scaleX(${levelWidth(micRms)})`;
  ui.botLevel.style.transform = `scaleX(${levelWidth(media.playedLevel())})`;
  const seconds = media.bot.seconds;
  ui.audio.textContent = seconds > 0 ? `${seconds.toFixed(1)} s` : "–";
}

function startMeters() {
  if (meterTimer === null) meterTimer = setInterval(tickMeters, 80);
}

function stopMeters() {
  if (meterTimer !== null) {
    clearInterval(meterTimer);
    meterTimer = null;
  }
  tickMeters();
  ui.micLevel.style.transform = "scaleX(0)";
  ui.botLevel.style.transform = "scaleX(0)";
}

function buildTransportChoice() {
  for (const entry of TRANSPORTS) {
    const label = document.createElement("label");
    label.className = "segment";
    label.title = entry.hint;
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "transport";
    input.value = entry.id;
    input.checked = entry.id === selected;
    input.addEventListener("change", () => {
      selected = entry.id;
      createClient();
      render();
    });
    const text = document.createElement("span");
    text.textContent = entry.label;
    label.append(input, text);
    ui.transports.append(label);
  }
}

// ---- wiring

buildTransportChoice();
createClient();
ui.connect.addEventListener("click", () => {
  const state = client?.state ?? "disconnected";
  if (IDLE_STATES.has(state) || describe(state)[1] === "idle") void connect();
  else void disconnect();
});
ui.mic.addEventListener("click", () => void toggleMic());
ui.composer.addEventListener("submit", (event) => void sendText(event));
ui.errorClose.addEventListener("click", clearError);
render();
