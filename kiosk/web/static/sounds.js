/* Scan result sounds, synthesised with Web Audio: no sound files, nothing from the network.
   Each outcome has its own shape, told apart without looking: arrival rises, departure falls,
   repeat is two short equal beeps, refused is a low buzz.
   Chromium only lets a page play sound after a user gesture unless it is started with
   --autoplay-policy=no-user-gesture-required (the kiosk's autostart line does that); the first
   touch or key press also unlocks it. */
(function () {
  "use strict";

  // [frequency Hz, start s, duration s, waveform, peak gain]
  const PATTERNS = {
    arrival: [
      [659, 0.0, 0.13, "sine", 0.5],
      [880, 0.13, 0.13, "sine", 0.5],
      [1319, 0.26, 0.3, "sine", 0.5],
    ],
    departure: [
      [1319, 0.0, 0.13, "sine", 0.5],
      [880, 0.13, 0.13, "sine", 0.5],
      [659, 0.26, 0.3, "sine", 0.5],
    ],
    repeat: [
      [988, 0.0, 0.09, "triangle", 0.45],
      [988, 0.17, 0.09, "triangle", 0.45],
    ],
    refused: [
      [196, 0.0, 0.22, "square", 0.25],
      [147, 0.28, 0.42, "square", 0.25],
    ],
  };
  PATTERNS.error = PATTERNS.refused;

  let context = null;

  function audio() {
    if (context === null) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      context = new Ctx();
    }
    if (context.state === "suspended") context.resume();
    return context;
  }

  function tone(ctx, at, freq, duration, wave, peak) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = wave;
    osc.frequency.setValueAtTime(freq, at);
    // Short ramps in and out: a bare start or stop of a wave clicks.
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(peak, at + 0.015);
    gain.gain.setValueAtTime(peak, at + Math.max(0.02, duration - 0.05));
    gain.gain.exponentialRampToValueAtTime(0.0001, at + duration);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(at);
    osc.stop(at + duration + 0.02);
  }

  const KioskSounds = {
    enabled: true,
    // What was asked to play, newest last: the browser tests read it (they cannot hear).
    played: [],
    play(outcome) {
      const pattern = PATTERNS[outcome];
      if (!pattern || !this.enabled) return false;
      this.played.push(outcome);
      if (this.played.length > 50) this.played.shift();
      const ctx = audio();
      if (ctx === null) return false;
      const start = ctx.currentTime + 0.01;
      for (const [freq, offset, duration, wave, peak] of pattern) {
        tone(ctx, start + offset, freq, duration, wave, peak);
      }
      return true;
    },
    unlock() {
      audio();
    },
  };

  window.KioskSounds = KioskSounds;
  for (const type of ["pointerdown", "keydown"]) {
    window.addEventListener(type, () => KioskSounds.unlock(), { once: true, capture: true });
  }
})();
