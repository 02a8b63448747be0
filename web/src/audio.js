// Audio for both transports: each transport package's WavMediaManager (plain getUserMedia, no
// downloads, so it works offline), with level metering on both directions. On WebSocket its
// 24 kHz AudioWorklet player plays the bot; on WebRTC the transport hands the page the bot's
// remote track, which we play in an <audio> element and tap. The published client emits no
// audio levels with this media manager, so we measure them here: the page shows them and the
// end-to-end test reads them.

/** Mic audio goes out as 512-byte chunks (16 ms) of 16 kHz PCM16: what the server expects. */
export const MIC_SAMPLE_RATE = 16000;
export const MIC_CHUNK_BYTES = 512;
/** WavMediaManager's player always runs at 24 kHz; a WebRTC bot track is measured at its
 * AudioContext's rate instead. */
export const BOT_SAMPLE_RATE = 24000;

/**
 * The browser's processing of the mic, for a speech bot. Echo cancellation stays on (on speakers
 * the bot would hear itself and interrupt itself), and so does gain control (a quiet mic still
 * reaches the VAD). Noise suppression goes off: speech recognisers are trained on noisy audio, and
 * the suppressor's artefacts hurt them more than the noise does. Measured with Whisper tiny.en on an
 * espeak "What time is it?" over WebRTC: with it on, "What tie visit?" in 18% of VAD cuts (56% with
 * the file turned down), since Opus then tips the smeared consonants over; with it off, none.
 */
export const MIC_PROCESSING = Object.freeze({
  echoCancellation: true,
  autoGainControl: true,
  noiseSuppression: false,
});

/** ``constraints`` for getUserMedia with MIC_PROCESSING added to any audio request; what the
 * caller set itself (a device, or one of these) wins. */
export function withMicProcessing(constraints) {
  if (!constraints?.audio) return constraints;
  const audio = typeof constraints.audio === "object" ? constraints.audio : {};
  return { ...constraints, audio: { ...MIC_PROCESSING, ...audio } };
}

/**
 * The transports' media managers call getUserMedia({audio: true}) (or with a deviceId) and take no
 * constraints of their own, so the page adds MIC_PROCESSING to every request it makes. Idempotent.
 */
export function installMicProcessing() {
  const devices = globalThis.navigator?.mediaDevices;
  if (!devices?.getUserMedia || devices.getUserMedia.voxloop) return;
  const getUserMedia = devices.getUserMedia.bind(devices);
  const wrapped = (constraints) => getUserMedia(withMicProcessing(constraints));
  wrapped.voxloop = true;
  devices.getUserMedia = wrapped;
}

/** A chunk whose RMS reaches this (-50 dBFS) counts as sound (speech), not silence. */
export const SOUND_LEVEL = 0.003;

/**
 * Running statistics of a PCM16 stream: a fixed-size record, whatever the call length. Besides the
 * totals it keeps the sound alone (chunks at or above ``SOUND_LEVEL``): how much, how loud, and
 * when the first and the latest came (``performance.now()``, the clock of the page's events), so
 * a test can tell when speech started and ended and how loud it was, whatever silence surrounds it.
 */
export class StreamStats {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.chunks = 0;
    this.samples = 0;
    this.nonZero = 0;
    this.peak = 0; // 0..1
    this.sumSquares = 0;
    this.level = 0; // RMS of the latest chunk, 0..1
    this.soundSamples = 0;
    this.soundSumSquares = 0;
    this.firstSoundAt = null;
    this.lastSoundAt = null;
  }

  add(pcm16) {
    let sum = 0;
    let peak = 0;
    let nonZero = 0;
    for (let i = 0; i < pcm16.length; i++) {
      const v = pcm16[i];
      if (v !== 0) nonZero++;
      const a = v < 0 ? -v : v;
      if (a > peak) peak = a;
      sum += v * v;
    }
    this.chunks++;
    this.samples += pcm16.length;
    this.nonZero += nonZero;
    this.sumSquares += sum / (32768 * 32768);
    this.peak = Math.max(this.peak, peak / 32768);
    this.level = pcm16.length ? Math.sqrt(sum / pcm16.length) / 32768 : 0;
    if (this.level >= SOUND_LEVEL) {
      const now = performance.now();
      this.firstSoundAt ??= now;
      this.lastSoundAt = now;
      this.soundSamples += pcm16.length;
      this.soundSumSquares += sum / (32768 * 32768);
    }
  }

  get seconds() {
    return this.samples / this.sampleRate;
  }

  get rms() {
    return this.samples ? Math.sqrt(this.sumSquares / this.samples) : 0;
  }

  /** RMS of the sound alone (0..1): how loud the speech was, however long the silences. */
  get soundRms() {
    return this.soundSamples ? Math.sqrt(this.soundSumSquares / this.soundSamples) : 0;
  }

  toJSON() {
    return {
      chunks: this.chunks,
      samples: this.samples,
      seconds: this.seconds,
      nonZero: this.nonZero,
      peak: this.peak,
      rms: this.rms,
      level: this.level,
      soundSeconds: this.soundSamples / this.sampleRate,
      soundRms: this.soundRms,
      firstSoundAt: this.firstSoundAt,
      lastSoundAt: this.lastSoundAt,
    };
  }
}

// Runs in the audio thread: forwards the bot track's samples (mono, first channel) to the page.
const TAP_WORKLET = `
class VoxloopTap extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel && channel.length) this.port.postMessage(channel.slice(0));
    return true;
  }
}
registerProcessor("voxloop-tap", VoxloopTap);
`;

/**
 * Plays the bot's remote WebRTC track in an <audio> element and measures what is played: every
 * sample (through an AudioWorklet tap) into ``stats``, and the live level through an analyser.
 */
class RemoteTrackPlayer {
  constructor(track, stats) {
    this.track = track;
    this.stats = stats;
    const stream = new MediaStream([track]);
    // Chromium only lets remote WebRTC audio into Web Audio when a media element plays it too.
    this.element = document.createElement("audio");
    this.element.autoplay = true;
    this.element.dataset.voxloop = "bot-audio";
    this.element.srcObject = stream;
    document.body.append(this.element);
    this.element.play().catch((error) => console.warn("voxloop: bot audio did not start", error));
    this.context = new AudioContext();
    this.source = this.context.createMediaStreamSource(stream);
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    this.ready = this._tap(); // the worklet loads asynchronously
  }

  async _tap() {
    const url = URL.createObjectURL(new Blob([TAP_WORKLET], { type: "application/javascript" }));
    try {
      await this.context.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    if (this.closed) return;
    this.stats.sampleRate = this.context.sampleRate;
    this.tap = new AudioWorkletNode(this.context, "voxloop-tap", { numberOfOutputs: 0 });
    this.tap.port.onmessage = ({ data }) => {
      const pcm = new Int16Array(data.length);
      for (let i = 0; i < data.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(data[i] * 32767)));
      this.stats.add(pcm);
    };
    this.source.connect(this.tap);
    if (this.context.state !== "running") await this.context.resume();
  }

  level() {
    const buffer = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
    return Math.sqrt(sum / buffer.length);
  }

  close() {
    this.closed = true;
    if (this.tap) this.tap.port.onmessage = null;
    this.source.disconnect();
    this.context.close().catch(() => {});
    this.element.pause();
    this.element.srcObject = null;
    this.element.remove();
  }
}

/**
 * A transport package's WavMediaManager, extended to measure the mic audio it records (what is
 * sent) and the bot audio it plays: on WebSocket what the transport hands its player, on WebRTC
 * the remote track (``attachBotTrack``).
 */
export function metered(WavMediaManager) {
  return class MeteredMediaManager extends WavMediaManager {
    constructor() {
      super(MIC_CHUNK_BYTES, MIC_SAMPLE_RATE);
      this.mic = new StreamStats(MIC_SAMPLE_RATE);
      this.bot = new StreamStats(BOT_SAMPLE_RATE);
      /** Loudest RMS seen at the bot audio's output, 0..1. */
      this.botPlayedPeakLevel = 0;
      /** WebRTC only: the bot track's player, and the browser's inbound-rtp audio figures. */
      this.remote = null;
      this.rtp = null;
    }

    setUserAudioCallback(callback) {
      super.setUserAudioCallback((data) => {
        this.mic.add(new Int16Array(data));
        callback(data);
      });
    }

    bufferBotAudio(data, id) {
      const samples = super.bufferBotAudio(data, id);
      if (samples) this.bot.add(samples);
      return samples;
    }

    /** WebRTC: play (and measure) the bot's audio track; the same track again is a no-op. */
    attachBotTrack(track) {
      if (this.remote?.track === track) return;
      this.detachBotTrack();
      this.remote = new RemoteTrackPlayer(track, this.bot);
      this.remote.ready.catch((error) => console.error("voxloop: cannot measure bot audio", error));
    }

    detachBotTrack(track) {
      if (!this.remote || (track && this.remote.track !== track)) return;
      this.remote.close();
      this.remote = null;
    }

    async disconnect() {
      this.detachBotTrack();
      return super.disconnect();
    }

    /** WebRTC: refresh the browser's own receive statistics (getStats inbound-rtp, audio). */
    async updateRtpStats(peerConnection) {
      if (!peerConnection) return;
      const report = await peerConnection.getStats();
      report.forEach((entry) => {
        if (entry.type === "inbound-rtp" && entry.kind === "audio") {
          this.rtp = {
            packetsReceived: entry.packetsReceived ?? 0,
            totalSamplesReceived: entry.totalSamplesReceived ?? 0,
            totalSamplesDuration: entry.totalSamplesDuration ?? 0,
            totalAudioEnergy: entry.totalAudioEnergy ?? 0,
          };
        }
      });
    }

    /** RMS (0..1) at the bot audio's output right now; 0 when not playing. */
    playedLevel() {
      let level = 0;
      if (this.remote) {
        level = this.remote.level();
      } else {
        // The player is private to WavMediaManager; read it defensively so a package update that
        // renames it only blanks the meter.
        const analyser = this._wavStreamPlayer?.analyser;
        if (!analyser || !this._wavStreamPlayer?.stream) return 0;
        const buffer = new Float32Array(analyser.fftSize);
        analyser.getFloatTimeDomainData(buffer);
        let sum = 0;
        for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
        level = Math.sqrt(sum / buffer.length);
      }
      this.botPlayedPeakLevel = Math.max(this.botPlayedPeakLevel, level);
      return level;
    }

    snapshot() {
      return {
        mic: this.mic.toJSON(),
        bot: this.bot.toJSON(),
        botPlayedPeakLevel: this.botPlayedPeakLevel,
        rtp: this.rtp,
      };
    }
  };
}
