//! Undo/redo of label edits, bounded by the bytes the steps hold (a
//! setting, 512 MB by default) rather than by a small count: a thousand
//! small strokes cost less than one big fill, and the oldest steps go first
//! when the budget is exceeded.

use std::collections::VecDeque;

/// The default budget.
pub const DEFAULT_BYTES: usize = 512 * 1024 * 1024;

/// Something the history can size.
pub trait StepSize {
    /// Memory held.
    fn bytes(&self) -> usize;
}

impl StepSize for super::LabelEdit {
    fn bytes(&self) -> usize {
        super::LabelEdit::bytes(self)
    }
}

/// Undo and redo stacks of steps of type `S`.
#[derive(Debug, Clone)]
pub struct History<S> {
    undo: VecDeque<S>,
    redo: Vec<S>,
    bytes: usize,
    budget: usize,
}

impl<S: StepSize> Default for History<S> {
    fn default() -> Self {
        History::with_budget(DEFAULT_BYTES)
    }
}

impl<S: StepSize> History<S> {
    /// An empty history holding at most `budget` bytes.
    pub fn with_budget(budget: usize) -> History<S> {
        History {
            undo: VecDeque::new(),
            redo: Vec::new(),
            bytes: 0,
            budget,
        }
    }

    /// Change the budget; the oldest steps go until it is kept.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        while self.bytes > self.budget && self.undo.len() > 1 {
            if let Some(old) = self.undo.pop_front() {
                self.bytes -= old.bytes();
            }
        }
    }

    /// The budget, bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Record a new step (the redo stack is cleared).
    pub fn push(&mut self, step: S) {
        for s in self.redo.drain(..) {
            self.bytes -= s.bytes();
        }
        self.bytes += step.bytes();
        self.undo.push_back(step);
        while self.bytes > self.budget && self.undo.len() > 1 {
            if let Some(old) = self.undo.pop_front() {
                self.bytes -= old.bytes();
            }
        }
    }

    /// The newest undoable step, when nothing waits to be redone (to merge
    /// a continuing edit into it, e.g. the colour of one label dragged).
    pub fn last_mut(&mut self) -> Option<&mut S> {
        if self.redo.is_empty() {
            self.undo.back_mut()
        } else {
            None
        }
    }

    /// The step to undo (moved to the redo stack).
    pub fn undo(&mut self) -> Option<&S> {
        let s = self.undo.pop_back()?;
        self.redo.push(s);
        self.redo.last()
    }

    /// The step to redo (moved back to the undo stack).
    pub fn redo(&mut self) -> Option<&S> {
        let s = self.redo.pop()?;
        self.undo.push_back(s);
        self.undo.back()
    }

    /// Steps that can be undone.
    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }

    /// Steps that can be redone.
    pub fn redo_len(&self) -> usize {
        self.redo.len()
    }

    /// Every step held, undo then redo.
    pub fn steps(&self) -> impl Iterator<Item = &S> {
        self.undo.iter().chain(self.redo.iter())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forget everything (a new case).
    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Step(usize);
    impl StepSize for Step {
        fn bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_budget_drops_the_oldest_steps_and_a_new_step_clears_redo() {
        let mut h = History::with_budget(100);
        for n in [40, 30, 20] {
            h.push(Step(n));
        }
        assert_eq!((h.undo_len(), h.bytes()), (3, 90));
        h.push(Step(50));
        assert_eq!((h.undo_len(), h.bytes()), (3, 100), "the oldest (40) went");
        assert_eq!(h.undo().map(|s| s.0), Some(50));
        assert_eq!(h.redo_len(), 1);
        assert_eq!(h.redo().map(|s| s.0), Some(50));
        h.undo();
        h.push(Step(5));
        assert_eq!((h.redo_len(), h.bytes()), (0, 55), "redo (50) cleared");
        // One step larger than the budget is still undoable.
        h.push(Step(1000));
        assert_eq!(h.undo_len(), 1);
    }
}
