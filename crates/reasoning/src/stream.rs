//! A report as it streams in, token by token, at the same cost per token
//! however long it already is: only the new token's text is decoded
//! (appended to the text as generated), only the words it completes are
//! grounded (appended to the grounded text), and the board is given a new
//! text only when a clause ends, at most once per [`PUBLISH_EVERY`].
//!
//! The stream counts its own work ([`StreamWork`]), so tests can hold it to
//! that without a clock.

use std::time::{Duration, Instant};

use sonoflow_model::ReportGrammar;

use crate::grounding::{Calipers, GroundedText, Grounder, WordEffect};
use crate::prompt::PromptCodec;

/// The shortest time between two texts given to the board while a report
/// is written: about a frame of a 60 Hz display (the overlay draws the board
/// once per output frame, so more would never be seen). The finished report
/// is published at once, whatever the time.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(16);

/// What the stream has done so far (each a count, for tests and benches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamWork {
    /// Tokens turned into text (one decode step each).
    pub decoded: usize,
    /// Bytes of words handed to the grounding.
    pub grounded_bytes: usize,
    /// The most bytes grounded on one token.
    pub max_token_bytes: usize,
    /// Texts handed out for the board, and their bytes in all.
    pub published: usize,
    pub published_bytes: usize,
}

/// One report streaming in.
pub struct ReportStream<'c> {
    decoder: TokenDecoder<'c>,
    /// The text as generated (placeholders and special tokens included).
    generated: String,
    /// Bytes of `generated` whose words are grounded; the rest is a word
    /// still being written.
    grounded_up_to: usize,
    grounder: Grounder<'c>,
    /// A clause ended since the board last got a text.
    clause_pending: bool,
    last_published: Option<Instant>,
    work: StreamWork,
}

/// The text of each new token.
enum TokenDecoder<'c> {
    /// A word-level vocabulary (no decoder): a token's text is its word,
    /// and words are joined by one space.
    Words(&'c [Option<String>]),
    /// Any other tokenizer: its own incremental decoder.
    Stream(
        tokenizers::tokenizer::DecodeStream<
            'c,
            tokenizers::ModelWrapper,
            tokenizers::NormalizerWrapper,
            tokenizers::PreTokenizerWrapper,
            tokenizers::PostProcessorWrapper,
            tokenizers::DecoderWrapper,
        >,
    ),
}

impl<'c> ReportStream<'c> {
    /// A report to be written with `codec`'s tokens in `grammar`,
    /// grounded in `calipers`.
    pub fn new(codec: &'c PromptCodec, grammar: &'c ReportGrammar, calipers: Calipers) -> Self {
        let decoder = match codec.words() {
            Some(words) => TokenDecoder::Words(words),
            None => TokenDecoder::Stream(codec.tokenizer().decode_stream(false)),
        };
        Self::with_decoder(decoder, grammar, calipers)
    }

    /// A stream over a word-level vocabulary (`words[id]`, None: not a token).
    pub fn over_words(
        words: &'c [Option<String>],
        grammar: &'c ReportGrammar,
        calipers: Calipers,
    ) -> Self {
        Self::with_decoder(TokenDecoder::Words(words), grammar, calipers)
    }

    fn with_decoder(
        decoder: TokenDecoder<'c>,
        grammar: &'c ReportGrammar,
        calipers: Calipers,
    ) -> Self {
        Self {
            decoder,
            generated: String::with_capacity(1024),
            grounded_up_to: 0,
            grounder: Grounder::new(grammar, calipers),
            clause_pending: false,
            last_published: None,
            work: StreamWork::default(),
        }
    }

    /// Takes the next token. Returns the grounded text for the board when
    /// one is due (a clause ended, and the last one handed out is at least
    /// [`PUBLISH_EVERY`] older than `now`).
    pub fn push(&mut self, token: i64, now: Instant) -> Option<&str> {
        self.work.decoded += 1;
        let whole_words = match &mut self.decoder {
            TokenDecoder::Words(words) => {
                let word = usize::try_from(token)
                    .ok()
                    .and_then(|i| words.get(i))
                    .and_then(Option::as_deref);
                if let Some(word) = word {
                    if !self.generated.is_empty() {
                        self.generated.push(' ');
                    }
                    self.generated.push_str(word);
                }
                true
            }
            TokenDecoder::Stream(stream) => {
                if let Ok(Some(chunk)) = u32::try_from(token)
                    .map_err(|_| ())
                    .and_then(|id| stream.step(id).map_err(|_| ()))
                {
                    self.generated.push_str(&chunk);
                }
                false
            }
        };
        let before = self.grounder.bytes();
        self.ground(whole_words);
        let bytes = self.grounder.bytes() - before;
        self.work.grounded_bytes += bytes;
        self.work.max_token_bytes = self.work.max_token_bytes.max(bytes);
        let due = self.clause_pending
            && self
                .last_published
                .is_none_or(|t| now.saturating_duration_since(t) >= PUBLISH_EVERY);
        if !due {
            return None;
        }
        self.clause_pending = false;
        self.last_published = Some(now);
        self.work.published += 1;
        self.work.published_bytes += self.grounder.text().len();
        Some(self.grounder.text())
    }

    /// Grounds the words written since the last call; the last one only
    /// when `whole` (it may still grow otherwise).
    fn ground(&mut self, whole: bool) {
        let rest = &self.generated[self.grounded_up_to..];
        let complete = if whole {
            rest.len()
        } else {
            // Up to the last whitespace: what follows may still grow.
            rest.rfind(char::is_whitespace).unwrap_or(0)
        };
        for word in rest[..complete].split_whitespace() {
            if self.grounder.word(word) == WordEffect::ClauseEnd {
                self.clause_pending = true;
            }
        }
        self.grounded_up_to += complete;
    }

    /// The grounded text so far.
    pub fn text(&self) -> &str {
        self.grounder.text()
    }

    /// What the stream has done so far.
    pub fn work(&self) -> StreamWork {
        self.work
    }

    /// The report as generated and as grounded (the last word included).
    pub fn finish(mut self) -> (String, GroundedText) {
        self.ground(true);
        (self.generated, self.grounder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grounding::ground;

    fn grammar() -> &'static ReportGrammar {
        static GRAMMAR: std::sync::OnceLock<ReportGrammar> = std::sync::OnceLock::new();
        GRAMMAR.get_or_init(ReportGrammar::default)
    }
    use sonoflow_core::annotations::Measurement;
    use sonoflow_core::findings::{Caliper, Point};

    fn calipers() -> Calipers {
        let mm = |length_mm| Measurement {
            caliper: Caliper {
                a: Point { x: 0.0, y: 0.0 },
                b: Point { x: 0.0, y: 0.0 },
                length_mm,
            },
            uncertainty_mm: 0.3,
        };
        Calipers {
            long: Some(mm(15.9)),
            short: Some(mm(9.0)),
        }
    }

    const REPORT: &str = "finding : mass . shape : oval . echo pattern : hypoechoic . \
        assessment : probably benign . long axis : <long> mm . short axis : <short> mm . \
        depth : 12 mm . [SEG] [DET]";

    /// A vocabulary of the report's words, and the report as token ids.
    fn tokens(text: &str) -> (Vec<Option<String>>, Vec<i64>) {
        let mut words: Vec<Option<String>> = Vec::new();
        let ids = text
            .split_whitespace()
            .map(|w| {
                let at = words.iter().position(|v| v.as_deref() == Some(w));
                at.unwrap_or_else(|| {
                    words.push(Some(w.to_owned()));
                    words.len() - 1
                }) as i64
            })
            .collect();
        (words, ids)
    }

    #[test]
    fn streamed_token_by_token_it_grounds_as_the_whole_text_does() {
        let (words, ids) = tokens(REPORT);
        let mut s = ReportStream::over_words(&words, grammar(), calipers());
        let t0 = Instant::now();
        for &id in &ids {
            s.push(id, t0);
        }
        let (generated, grounded) = s.finish();
        assert_eq!(
            generated,
            REPORT.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(grounded, ground(REPORT, &calipers(), grammar()));
        assert_eq!(grounded.unverified, vec!["12"]);
    }

    #[test]
    fn a_long_reports_work_per_token_is_bounded_and_the_board_gets_clauses_at_a_bounded_rate() {
        let long = vec![REPORT; 200].join(" ");
        let (words, ids) = tokens(&long);
        let longest = words.iter().flatten().map(String::len).max().unwrap_or(0);
        let mut s = ReportStream::over_words(&words, grammar(), calipers());
        // A token every 0.5 ms of a virtual clock.
        let t0 = Instant::now();
        let step = Duration::from_micros(500);
        let mut texts = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if let Some(text) = s.push(id, t0 + step * i as u32) {
                texts.push(text.len());
            }
        }
        let work = s.work();
        assert_eq!(work.decoded, ids.len(), "one decode step a token");
        assert!(
            work.max_token_bytes <= longest,
            "a token grounds its own word only: {work:?}"
        );
        let generated_len = s.generated.len();
        assert!(
            work.grounded_bytes <= generated_len,
            "every byte is grounded once: {work:?}, {generated_len}"
        );
        // Texts only at clause ends, at most one per PUBLISH_EVERY.
        let written = step * ids.len() as u32;
        let most = (written.as_micros() / PUBLISH_EVERY.as_micros()) as usize + 1;
        assert!(
            (2..=most).contains(&work.published),
            "{} texts over {written:?}",
            work.published
        );
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "the text only grows");
        let (_, grounded) = s.finish();
        assert_eq!(grounded, ground(&long, &calipers(), grammar()));
    }

    #[test]
    fn the_first_clause_is_published_at_once_and_words_out_of_vocabulary_are_skipped() {
        let (words, ids) = tokens("finding : mass . shape : oval .");
        let mut s = ReportStream::over_words(&words, grammar(), calipers());
        let t0 = Instant::now();
        let mut shown = Vec::new();
        for &id in ids.iter().chain([&99, &-1]) {
            shown.push(s.push(id, t0).map(str::to_owned));
        }
        assert_eq!(shown[3].as_deref(), Some("finding: mass."));
        assert!(
            shown.iter().skip(4).all(Option::is_none),
            "within PUBLISH_EVERY: {shown:?}"
        );
        assert_eq!(s.finish().1.text, "finding: mass. shape: oval.");
    }

    #[test]
    fn with_a_tokenizer_whose_tokens_split_words_a_word_is_grounded_once_it_is_whole() {
        // Pieces fused by the tokenizer's decoder: "123" comes in two tokens.
        let pieces = ["long", " axis", " :", " 12", "3", " mm", " .", " [SEG]"];
        let vocab: Vec<String> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:?}: {i}", p))
            .collect();
        let json = format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": null, "pre_tokenizer": null, "post_processor": null,
                "decoder": {{"type": "Fuse"}},
                "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "long"}}}}"#,
            vocab.join(", ")
        );
        let tokenizer: tokenizers::Tokenizer = json.parse().expect("tokenizer");
        let ids: Vec<i64> = (0..pieces.len() as i64).collect();
        let mut s = ReportStream::with_decoder(
            TokenDecoder::Stream(tokenizer.decode_stream(false)),
            grammar(),
            calipers(),
        );
        let t0 = Instant::now();
        let mut after_12 = None;
        for &id in &ids {
            s.push(id, t0);
            if id == 3 {
                after_12 = Some(s.text().to_owned());
            }
        }
        assert_eq!(
            after_12.as_deref(),
            Some("long axis:"),
            "\"12\" may still grow"
        );
        let (generated, grounded) = s.finish();
        assert_eq!(generated, "long axis : 123 mm . [SEG]");
        assert_eq!(grounded, ground(&generated, &calipers(), grammar()));
        assert_eq!(grounded.replaced, vec!["123"], "one number, not 12 and 3");
        assert_eq!(grounded.text, "long axis: 15.9 ± 0.3 mm.");
    }
}
