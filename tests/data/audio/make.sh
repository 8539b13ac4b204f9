#!/usr/bin/env bash
# Regenerate the test recordings (espeak-ng 1.51 + sox 14.4). The committed WAVs are the reference:
# the tests derive their truth from the files themselves, so a regenerated file needs no test edits
# as long as the layout below is kept.
#
# three_turns.wav, 16 kHz mono s16, about 9.6 s:
#   0.5 s silence
#   Q  en-us   "Bring them to the station."                          -40 dB (a distant talker)
#   1.0 s silence
#   A  en-us   "Turn detection finds where people start speaking."   full level
#   0.7 s silence
#   B  en-us+f3 "Six spoons of fresh snow peas."                     full level, soft /s/ onset
#   1.2 s silence
# Q comes first because Silero's recurrent state adapts to the level: after loud speech it no
# longer hears a talker 40 dB down at all.
# plus pink noise about 76 dB below full scale over the whole file.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() {  # voice text out [gain]
  espeak-ng -v "$1" -s 170 -w "$tmp/raw.wav" "$2"
  # 16 kHz, and trim espeak's own leading and trailing silence so the gaps below are exact.
  sox "$tmp/raw.wav" -r 16000 -b 16 -c 1 "$3" rate -v vol "${4:-1}" \
    silence 1 0.005 0.05% reverse silence 1 0.005 0.05% reverse
}
gap() { sox -n -r 16000 -b 16 -c 1 "$2" trim 0 "$1"; }
say en-us "Turn detection finds where people start speaking." "$tmp/a.wav"
say en-us+f3 "Six spoons of fresh snow peas." "$tmp/b.wav"
say en-us "Bring them to the station." "$tmp/q.wav"
# Q is attenuated after trimming, so its edges are those of the full-level speech.
sox "$tmp/q.wav" "$tmp/q40.wav" vol 0.01
gap 0.5 "$tmp/g05.wav"; gap 1.0 "$tmp/g10.wav"; gap 0.7 "$tmp/g07.wav"; gap 1.2 "$tmp/g12.wav"
sox "$tmp/g05.wav" "$tmp/q40.wav" "$tmp/g10.wav" "$tmp/a.wav" "$tmp/g07.wav" "$tmp/b.wav" "$tmp/g12.wav" \
  "$tmp/clean.wav"
sox -R -n -r 16000 -b 16 -c 1 "$tmp/noise.wav" synth "$(soxi -D "$tmp/clean.wav")" pinknoise vol 0.0008
sox -R -m -v 1 "$tmp/clean.wav" -v 1 "$tmp/noise.wav" -b 16 three_turns.wav
soxi three_turns.wav | grep -E 'Duration|Sample Rate'
