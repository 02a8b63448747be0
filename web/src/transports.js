// The transports the page offers. Each entry knows how to build its client-side transport and
// what to ask /start for; the page itself only talks to PipecatClient.

import { WebSocketTransport, WavMediaManager as WebSocketWavMediaManager } from "@pipecat-ai/websocket-transport";
import {
  SmallWebRTCTransport,
  WavMediaManager as WebRTCWavMediaManager,
} from "@pipecat-ai/small-webrtc-transport";
import { installMicProcessing, metered, MIC_SAMPLE_RATE } from "./audio.js";

// Never the default media managers: they download Daily's call bundle at run time, so an offline
// page would hang at "initializing". Each transport gets its own package's WavMediaManager.
const WebSocketMedia = metered(WebSocketWavMediaManager);
const WebRTCMedia = metered(WebRTCWavMediaManager);

// Both transports capture the mic with the same processing (see MIC_PROCESSING).
installMicProcessing();

export const TRANSPORTS = [
  {
    id: "websocket",
    label: "WebSocket",
    hint: "Audio and messages over one WebSocket",
    create() {
      const media = new WebSocketMedia();
      const transport = new WebSocketTransport({ mediaManager: media, recorderSampleRate: MIC_SAMPLE_RATE });
      return { transport, media };
    },
    startParams: { endpoint: "/start", requestData: { transport: "websocket" } },
  },
  {
    id: "webrtc",
    label: "WebRTC",
    hint: "Audio over a peer connection, messages over its data channel",
    create() {
      const media = new WebRTCMedia();
      // The transport sends the mic track itself and never asks for recorded chunks; take them
      // anyway, only to meter what the mic captures.
      media.setUserAudioCallback(() => {});
      // The /start reply ({sessionId, iceConfig}) makes the client offer to
      // /sessions/{sessionId}/api/offer.
      const transport = new SmallWebRTCTransport({ mediaManager: media });
      return {
        transport,
        media,
        // The browser's own receive figures; the peer connection is the transport's (private).
        poll: () => media.updateRtpStats(transport.pc).catch(() => {}),
      };
    },
    startParams: { endpoint: "/start", requestData: { transport: "webrtc" } },
  },
];

export function transportById(id) {
  return TRANSPORTS.find((t) => t.id === id);
}
