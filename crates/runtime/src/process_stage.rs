//! The process stage a definition asks for: pass-through, or the model on
//! its AI lane with the reasoning head beside it. Everything is loaded,
//! checked and warmed up here, before any frame flows.

use std::path::Path;
use std::sync::Arc;

use sonoflow_inference::{default_dylib, Runtime};
use sonoflow_overlay::InterpretationBoard;
use sonoflow_pipeline::{FrameActivity, LoadLevel, PassThrough, Processor};
use sonoflow_reasoning::ReasoningHead;

use crate::ai_lane::ModelProcessor;
use crate::definition::{PipelineDefinition, ProcessKind};
use crate::error::RunError;
use crate::frame_analysis::{FrameAnalysis, InferenceStats};
use crate::recording::RecordTap;

/// The process stage of a run, and its inference statistics if it runs a model.
pub struct ProcessStage {
    pub processor: Box<dyn Processor>,
    pub inference: Option<Arc<InferenceStats>>,
    /// Where interpretations are published for the overlay's panel.
    pub interpretations: Arc<InterpretationBoard>,
    /// The reasoning head, when it runs (stopped when the run ends).
    pub reasoning: Option<ReasoningHead>,
    /// The degradation ladder's step, read by the AI lane and the overlay.
    pub load: LoadLevel,
    /// Frame work in progress (the model, drawing): the head yields to it.
    pub activity: FrameActivity,
    /// What the overlay calls a finding: the model's own word from its
    /// manifest ("finding" without a model).
    pub finding_name: String,
}

impl ProcessStage {
    /// A stage of the caller's own (tests, embedding applications).
    pub fn custom(processor: Box<dyn Processor>) -> Self {
        Self {
            processor,
            inference: None,
            interpretations: Arc::new(InterpretationBoard::empty()),
            reasoning: None,
            load: LoadLevel::new(),
            activity: FrameActivity::new(),
            finding_name: "finding".to_owned(),
        }
    }

    /// The stage a definition asks for; a model is loaded, checked and
    /// warmed up here, before any frame flows.
    pub fn for_definition(def: &PipelineDefinition) -> Result<Self, RunError> {
        Self::recording(def, None)
    }

    /// [`Self::for_definition`], handing every frame the model runs on to
    /// `record` (`sonoflow run --record`).
    pub fn recording(
        def: &PipelineDefinition,
        record: Option<RecordTap>,
    ) -> Result<Self, RunError> {
        let (ProcessKind::Model, Some(spec)) = (def.process, &def.model) else {
            return Ok(Self::custom(Box::new(PassThrough)));
        };
        let (mut analysis, stats) =
            FrameAnalysis::load(spec, def.perception, def.frames_in_flight(), None)?;
        let interpretations = Arc::new(InterpretationBoard::empty());
        let reasoning = match &def.reasoning {
            Some(head)
                if head.required || head.model.is_some() || analysis.has_reasoning_graphs() =>
            {
                let runtime = Runtime::load(&default_dylib(Path::new(".")))?;
                let started = ReasoningHead::start(
                    head.clone(),
                    &spec.dir,
                    spec.engine.clone(),
                    runtime,
                    analysis.kernel_slot(),
                    Arc::clone(&interpretations),
                    analysis.image_token_values(),
                )?;
                analysis.attach_head(started.handle(), head.keyframes.clone());
                Some(started)
            }
            _ => None,
        };
        let (load, activity) = (LoadLevel::new(), FrameActivity::new());
        let finding_name = analysis.finding_name().to_owned();
        if let Some(head) = &reasoning {
            head.handle().yield_to(activity.clone());
        }
        let processor = ModelProcessor::start(
            analysis,
            spec.stall_after,
            load.clone(),
            activity.clone(),
            record,
        )?;
        Ok(Self {
            processor: Box::new(processor),
            inference: Some(stats),
            interpretations,
            reasoning,
            load,
            activity,
            finding_name,
        })
    }
}
