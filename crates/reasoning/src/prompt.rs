//! The model's tokenizer (the `tokenizers` crate reading the same
//! tokenizer.json the training used) and the ids the head needs: the task
//! prompt, the end token and the task tokens whose hidden states become
//! kernels. The prompts a model answers and the placeholders its reports
//! hold come from its manifest (`prompts`, `[report]`) and are checked
//! against the vocabulary when it loads.

use sonoflow_model::ModelDir;
use tokenizers::Tokenizer;

use crate::ReasoningError;

/// The end-of-sequence token of sonoflow models.
pub const EOS: &str = "[EOS]";

pub struct PromptCodec {
    tokenizer: Tokenizer,
    path: String,
    /// Each id's text, for a word-level vocabulary (no decoder: decoding
    /// joins the tokens' words with a space), so a streamed token costs a
    /// lookup; None for other tokenizers.
    words: Option<Vec<Option<String>>>,
    pub eos: i64,
    /// The kernel rows' task tokens (default-kernel order) and their ids.
    pub task_tokens: Vec<String>,
    pub task_ids: Vec<i64>,
    /// The model's task prompts, quoted, for errors: "\"[DIAG]\", \"[SEG] cyst\"".
    examples: String,
}

impl PromptCodec {
    /// Loads the tokenizer `model`'s manifest names (checked like every
    /// model file: inside the directory, present, its hash matching); every
    /// kernel task token, the end token and every report placeholder must
    /// be in its vocabulary, and every task prompt must encode. The head
    /// and `sonoflow model check` load it this way.
    pub fn load(model: &ModelDir) -> Result<Self, ReasoningError> {
        let file = model
            .tokenizer_file()?
            .ok_or_else(|| ReasoningError::NoTokenizer {
                model: ModelDir::manifest_path(&model.root).display().to_string(),
            })?;
        let path = file.display().to_string();
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| ReasoningError::Tokenizer {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .map(i64::from)
                .ok_or_else(|| ReasoningError::Tokenizer {
                    path: path.clone(),
                    cause: format!(
                        "the vocabulary has no `{token}`, which the model's manifest names"
                    ),
                })
        };
        let eos = id(EOS)?;
        for clause in &model.manifest.report.measurements {
            id(&clause.placeholder)?;
        }
        let task_tokens = model.manifest.default_kernels.tokens.clone();
        let task_ids = task_tokens
            .iter()
            .map(|t| id(t))
            .collect::<Result<_, _>>()?;
        let words = tokenizer.get_decoder().is_none().then(|| {
            let ids = tokenizer
                .get_vocab(true)
                .into_values()
                .max()
                .map_or(0, |m| m + 1);
            (0..ids).map(|id| tokenizer.id_to_token(id)).collect()
        });
        let prompts = model.manifest.task_prompts();
        let examples = prompts
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let codec = Self {
            tokenizer,
            path,
            words,
            eos,
            task_tokens,
            task_ids,
            examples,
        };
        for prompt in prompts {
            match codec.encode(prompt) {
                Ok(_) => {}
                Err(ReasoningError::Prompt { unknown, .. }) => {
                    return Err(ReasoningError::Tokenizer {
                        path: codec.path.clone(),
                        cause: format!(
                            "the manifest's prompts name \"{prompt}\", whose words {unknown} are not in the vocabulary"
                        ),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(codec)
    }

    /// The tokenizer (streaming decodes with it, see [`crate::stream`]).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Each id's word, when the vocabulary is word-level (see [`crate::stream`]).
    pub fn words(&self) -> Option<&[Option<String>]> {
        self.words.as_deref()
    }

    /// Tokens in the vocabulary, special tokens included.
    pub fn vocabulary_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids of a prompt ("[DIAG]", "[SEG] cyst"). Words outside the
    /// vocabulary are refused, naming them: the model would not understand.
    pub fn encode(&self, prompt: &str) -> Result<Vec<i64>, ReasoningError> {
        let encoding =
            self.tokenizer
                .encode(prompt, false)
                .map_err(|e| ReasoningError::Tokenizer {
                    path: self.path.clone(),
                    cause: e.to_string(),
                })?;
        let unknown: Vec<&str> = prompt
            .split_whitespace()
            .filter(|w| self.tokenizer.token_to_id(w).is_none())
            .collect();
        if !unknown.is_empty() || encoding.get_ids().is_empty() {
            return Err(ReasoningError::Prompt {
                prompt: prompt.to_owned(),
                unknown: unknown.join(", "),
                examples: self.examples.clone(),
            });
        }
        Ok(encoding.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// The text of `ids`, special tokens included (grounding reads the placeholders).
    pub fn decode(&self, ids: &[i64]) -> String {
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        self.tokenizer.decode(&ids, false).unwrap_or_default()
    }
}
