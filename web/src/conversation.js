// The conversation view: user turns from transcripts (interim text shown until final) and typed
// messages; bot turns from bot-output, one bubble per turn, each spoken segment shown as it is
// spoken (the part already said in full colour, the rest dimmed).

const MAX_TURNS = 200; // the view keeps the latest turns only

export class Conversation {
  constructor(container, emptyState) {
    this.container = container;
    this.emptyState = emptyState;
    this.user = null; // {bubble, final, interim}
    this.bot = null; // {bubble, segments: Map<id, {spoken, remaining}>, loose}
  }

  userStarted() {
    this.bot = null;
  }

  userTranscript({ text, final }) {
    if (!this.user) this.user = { ...this._turn("user"), final: null, interim: null };
    this.bot = null;
    const turn = this.user;
    if (final) {
      if (!turn.final) {
        turn.final = document.createElement("span");
        turn.body.prepend(turn.final);
      }
      turn.final.textContent = join(turn.final.textContent, text);
      turn.interim?.remove();
      turn.interim = null;
    } else {
      if (!turn.interim) {
        turn.interim = document.createElement("span");
        turn.interim.className = "interim";
        turn.body.append(turn.interim);
      }
      turn.interim.textContent = turn.final ? ` ${text}` : text;
    }
    this._scroll();
  }

  userTyped(text) {
    const turn = this._turn("user", "typed");
    turn.body.textContent = text;
    this.user = null;
    this.bot = null;
    this._scroll();
  }

  botOutput(data) {
    if (!data || typeof data.text !== "string") return;
    if (!this.bot) this.bot = { ...this._turn("bot"), segments: new Map() };
    this.user = null;
    const turn = this.bot;
    if (data.segment_id === undefined || data.segment_id === null) {
      // Protocol 1.x: word or sentence pieces, appended as they come.
      turn.body.append(document.createTextNode(turn.body.textContent ? ` ${data.text}` : data.text));
      this._scroll();
      return;
    }
    let segment = turn.segments.get(data.segment_id);
    if (!segment) {
      const el = document.createElement("span");
      el.className = "spoken-segment";
      const spoken = document.createElement("span");
      const remaining = document.createElement("span");
      remaining.className = "unspoken";
      el.append(spoken, remaining);
      if (turn.segments.size) turn.body.append(document.createTextNode(" "));
      turn.body.append(el);
      segment = { spoken, remaining };
      turn.segments.set(data.segment_id, segment);
    }
    const progress = data.spoken_progress;
    if (data.spoken_status === "completed") {
      segment.spoken.textContent = progress?.accumulated_text || data.text;
      segment.remaining.textContent = "";
    } else if (data.spoken_status === "in-progress" && progress) {
      segment.spoken.textContent = progress.accumulated_text;
      segment.remaining.textContent = progress.remaining_text;
    } else if (data.spoken_status === "new") {
      segment.remaining.textContent = data.text;
    } else {
      segment.spoken.textContent = data.text; // not spoken (text-only output)
    }
    this._scroll();
  }

  botStopped() {
    this.bot = null;
  }

  /** A quiet line between turns: connected, disconnected. */
  note(text) {
    this.emptyState.hidden = true;
    const line = document.createElement("div");
    line.className = "note";
    line.textContent = text;
    this.container.append(line);
    this.user = null;
    this.bot = null;
    this._trim();
    this._scroll();
  }

  _turn(who, extra) {
    this.emptyState.hidden = true;
    const row = document.createElement("div");
    row.className = `turn ${who}${extra ? ` ${extra}` : ""}`;
    const label = document.createElement("span");
    label.className = "who";
    label.textContent = who === "user" ? (extra === "typed" ? "You · typed" : "You") : "Bot";
    const body = document.createElement("p");
    body.className = "bubble";
    row.append(label, body);
    this.container.append(row);
    this._trim();
    return { row, body };
  }

  _trim() {
    const items = this.container.querySelectorAll(".turn, .note");
    for (let i = 0; i < items.length - MAX_TURNS; i++) items[i].remove();
  }

  _scroll() {
    this.container.scrollTop = this.container.scrollHeight;
  }
}

function join(a, b) {
  return a ? `${a} ${b}` : b;
}
