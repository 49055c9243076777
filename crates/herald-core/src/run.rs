//! The life of a replay run: `running` until it re-drove everything it planned
//! (`finished`) or met an error it cannot resume from (`failed`). A `running` run whose
//! process died is resumable.

/// Where a replay run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Finished,
    Failed,
}

impl RunState {
    /// Every state, in a stable order.
    pub const ALL: [RunState; 3] = [Self::Running, Self::Finished, Self::Failed];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    /// The state a wire string names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a run in this state may be resumed.
    pub fn is_resumable(self) -> bool {
        self == Self::Running
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_running_resumes() {
        for state in RunState::ALL {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
        }
        assert_eq!(RunState::parse("paused"), None);
        assert!(RunState::Running.is_resumable());
        assert!(!RunState::Finished.is_resumable() && !RunState::Failed.is_resumable());
    }
}
