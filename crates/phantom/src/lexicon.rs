//! The phantom's lesion vocabulary, after the ACR BI-RADS ultrasound
//! lexicon: shape, orientation, margin, echo pattern, posterior features
//! and calcifications, the finding class, and a simplified assessment.
//!
//! This is phantom knowledge: the scene draws lesions from these types.
//! The ground truth ([`sonoflow_core::findings::LesionTruth`]) and the model
//! side carry the vocabulary as strings (the model reads its own from the
//! model manifest); [`FindingClass::name`], [`LesionAttributes::describe`]
//! and [`Assessment::name`] turn these types into those strings, the serde
//! names below ("complex_cystic_solid", "probably_benign").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Oval,
    Round,
    Irregular,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    /// Wider than tall.
    Parallel,
    /// Taller than wide.
    NotParallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Margin {
    Circumscribed,
    Indistinct,
    Angular,
    Microlobulated,
    Spiculated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EchoPattern {
    Anechoic,
    Hypoechoic,
    /// Same echo level as subcutaneous fat.
    Isoechoic,
    Hyperechoic,
    Heterogeneous,
    ComplexCysticSolid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PosteriorFeatures {
    None,
    Enhancement,
    Shadowing,
    Combined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calcifications {
    None,
    InMass,
    OutsideMass,
}

/// The descriptors of one lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LesionAttributes {
    pub shape: Shape,
    pub orientation: Orientation,
    pub margin: Margin,
    pub echo_pattern: EchoPattern,
    pub posterior: PosteriorFeatures,
    pub calcifications: Calcifications,
}

/// Assessment category, BI-RADS style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assessment {
    /// 2: e.g. a simple cyst.
    Benign,
    /// 3: oval, circumscribed, parallel solid mass.
    ProbablyBenign,
    /// 4: one suspicious feature.
    Suspicious,
    /// 5: several suspicious features together.
    HighlySuggestive,
}

impl Assessment {
    pub fn category(self) -> u8 {
        match self {
            Assessment::Benign => 2,
            Assessment::ProbablyBenign => 3,
            Assessment::Suspicious => 4,
            Assessment::HighlySuggestive => 5,
        }
    }

    /// Its word in the truth and the model's vocabulary ("probably_benign").
    pub fn name(self) -> String {
        serde_name(self)
    }
}

impl LesionAttributes {
    /// A simplified, deterministic mapping from descriptors to a category,
    /// good for phantom data only (it is not the clinical BI-RADS process):
    /// each of irregular shape, a non-circumscribed margin, not-parallel
    /// orientation, shadowing and calcifications in a mass counts as one
    /// suspicious feature; three or more give 5, one or two give 4; none
    /// gives 2 for an anechoic lesion with posterior enhancement (a simple
    /// cyst) and 3 otherwise.
    pub fn assessment(&self) -> Assessment {
        let suspicious = [
            self.shape == Shape::Irregular,
            self.margin != Margin::Circumscribed,
            self.orientation == Orientation::NotParallel,
            matches!(
                self.posterior,
                PosteriorFeatures::Shadowing | PosteriorFeatures::Combined
            ),
            self.calcifications == Calcifications::InMass,
        ]
        .into_iter()
        .filter(|&s| s)
        .count();
        match suspicious {
            0 if self.echo_pattern == EchoPattern::Anechoic
                && self.posterior == PosteriorFeatures::Enhancement =>
            {
                Assessment::Benign
            }
            0 => Assessment::ProbablyBenign,
            1 | 2 => Assessment::Suspicious,
            _ => Assessment::HighlySuggestive,
        }
    }

    /// The descriptors as words: descriptor name → value ("echo_pattern" →
    /// "hypoechoic"), the field and variant names above.
    pub fn describe(&self) -> BTreeMap<String, String> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(word) => (name, word),
                    other => unreachable!("descriptor {name} serialised to {other}"),
                })
                .collect(),
            other => unreachable!("lesion attributes serialised to {other:?}"),
        }
    }
}

/// What a finding is, for segmentation and detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    Cyst,
    Mass,
}

impl FindingClass {
    /// Its word in the truth and the model's vocabulary ("cyst").
    pub fn name(self) -> String {
        serde_name(self)
    }
}

/// The serde name of a unit variant. Every lexicon enum is made of unit
/// variants, which serialise to their names and cannot fail: anything else
/// is a bug in this module, not bad input.
fn serde_name(value: impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("a lexicon value serialised to {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(
        shape: Shape,
        margin: Margin,
        orientation: Orientation,
        echo: EchoPattern,
        posterior: PosteriorFeatures,
    ) -> LesionAttributes {
        LesionAttributes {
            shape,
            orientation,
            margin,
            echo_pattern: echo,
            posterior,
            calcifications: Calcifications::None,
        }
    }

    #[test]
    fn simplified_assessment_follows_the_stated_rules() {
        use EchoPattern::*;
        use Margin::*;
        use Orientation::*;
        use PosteriorFeatures as P;
        use Shape::*;
        assert_eq!(
            attrs(Oval, Circumscribed, Parallel, Anechoic, P::Enhancement).assessment(),
            Assessment::Benign
        );
        assert_eq!(
            attrs(Oval, Circumscribed, Parallel, Hypoechoic, P::None).assessment(),
            Assessment::ProbablyBenign
        );
        assert_eq!(
            attrs(Oval, Indistinct, Parallel, Hypoechoic, P::None).assessment(),
            Assessment::Suspicious
        );
        assert_eq!(
            attrs(Irregular, Spiculated, NotParallel, Hypoechoic, P::Shadowing).assessment(),
            Assessment::HighlySuggestive
        );
        assert_eq!(Assessment::HighlySuggestive.category(), 5);
    }

    #[test]
    fn words_are_the_serde_names_and_read_back() {
        let a = LesionAttributes {
            calcifications: Calcifications::InMass,
            ..attrs(
                Shape::Irregular,
                Margin::Spiculated,
                Orientation::NotParallel,
                EchoPattern::ComplexCysticSolid,
                PosteriorFeatures::None,
            )
        };
        let words = a.describe();
        let pairs: Vec<(&str, &str)> = words
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("calcifications", "in_mass"),
                ("echo_pattern", "complex_cystic_solid"),
                ("margin", "spiculated"),
                ("orientation", "not_parallel"),
                ("posterior", "none"),
                ("shape", "irregular"),
            ]
        );
        let back: LesionAttributes =
            serde_json::from_value(serde_json::to_value(&words).expect("map")).expect("words");
        assert_eq!(back, a);
        assert_eq!(FindingClass::Cyst.name(), "cyst");
        assert_eq!(Assessment::ProbablyBenign.name(), "probably_benign");
    }
}
