// The transports the page offers. Each entry knows how to build its client-side transport and
// what to ask /start for; the page itself only talks to PipecatClient. Adding WebRTC means adding
// an entry here (with its own media handling) and enabling it.

import { WebSocketTransport } from "@pipecat-ai/websocket-transport";
import { MeteredMediaManager, MIC_SAMPLE_RATE } from "./audio.js";

export const TRANSPORTS = [
  {
    id: "websocket",
    label: "WebSocket",
    hint: "Audio and messages over one WebSocket",
    available: true,
    create() {
      // Never the default media manager: it downloads Daily's call bundle at run time, so an
      // offline page would hang at "initializing".
      const media = new MeteredMediaManager();
      const transport = new WebSocketTransport({ mediaManager: media, recorderSampleRate: MIC_SAMPLE_RATE });
      return { transport, media };
    },
    startParams: { endpoint: "/start", requestData: { transport: "websocket" } },
  },
  {
    id: "webrtc",
    label: "WebRTC",
    hint: "Coming soon",
    available: false,
  },
];

export function transportById(id) {
  return TRANSPORTS.find((t) => t.id === id && t.available);
}
