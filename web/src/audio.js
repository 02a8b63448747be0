// Audio for the WebSocket transport: the transport package's WavMediaManager (plain getUserMedia
// and a 24 kHz AudioWorklet player, no downloads, so it works offline), with level metering on
// both directions. The published client emits no audio levels with this media manager, so we
// measure them here: the page shows them and the end-to-end test reads them.

import { WavMediaManager } from "@pipecat-ai/websocket-transport";

/** Mic audio goes out as 512-byte chunks (16 ms) of 16 kHz PCM16: what the server expects. */
export const MIC_SAMPLE_RATE = 16000;
export const MIC_CHUNK_BYTES = 512;
/** WavMediaManager's player always runs at 24 kHz. */
export const BOT_SAMPLE_RATE = 24000;

/** Running statistics of a PCM16 stream: a fixed-size record, whatever the call length. */
export class StreamStats {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.chunks = 0;
    this.samples = 0;
    this.nonZero = 0;
    this.peak = 0; // 0..1
    this.sumSquares = 0;
    this.level = 0; // RMS of the latest chunk, 0..1
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
  }

  get seconds() {
    return this.samples / this.sampleRate;
  }

  get rms() {
    return this.samples ? Math.sqrt(this.sumSquares / this.samples) : 0;
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
    };
  }
}

/**
 * WavMediaManager that measures the mic audio it hands to the transport (what is sent) and the
 * bot audio the transport hands to its player (what is played).
 */
export class MeteredMediaManager extends WavMediaManager {
  constructor() {
    super(MIC_CHUNK_BYTES, MIC_SAMPLE_RATE);
    this.mic = new StreamStats(MIC_SAMPLE_RATE);
    this.bot = new StreamStats(BOT_SAMPLE_RATE);
    /** Loudest RMS the player's own analyser has seen at its output, 0..1. */
    this.botPlayedPeakLevel = 0;
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

  /** RMS (0..1) at the player's output right now, from its AnalyserNode; 0 when not playing. */
  playedLevel() {
    // The player is private to WavMediaManager; read it defensively so a package update that
    // renames it only blanks the meter.
    const analyser = this._wavStreamPlayer?.analyser;
    if (!analyser || !this._wavStreamPlayer?.stream) return 0;
    const buffer = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
    const level = Math.sqrt(sum / buffer.length);
    this.botPlayedPeakLevel = Math.max(this.botPlayedPeakLevel, level);
    return level;
  }

  snapshot() {
    return {
      mic: this.mic.toJSON(),
      bot: this.bot.toJSON(),
      botPlayedPeakLevel: this.botPlayedPeakLevel,
    };
  }
}
