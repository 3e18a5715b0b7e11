//! Fixed-capacity ring buffer for the streaming detectors.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ring {
    buf: Vec<f64>,
    head: usize,
    filled: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring {
            buf: vec![0.0; capacity],
            head: 0,
            filled: 0,
        }
    }
    pub fn is_full(&self) -> bool {
        self.filled == self.buf.len()
    }
    /// Element `j` counted from the oldest held one.
    #[inline]
    pub fn nth_oldest(&self, j: usize) -> f64 {
        let n = self.buf.len();
        let mut k = self.head + j;
        if k >= n {
            k -= n;
        }
        self.buf[k]
    }
    /// Appends, dropping the oldest element when full.
    #[inline]
    pub fn push(&mut self, x: f64) {
        let n = self.buf.len();
        if n == 0 {
            return;
        }
        if self.filled < n {
            self.buf[self.filled] = x;
            self.filled += 1;
        } else {
            self.buf[self.head] = x;
            self.head += 1;
            if self.head == n {
                self.head = 0;
            }
        }
    }
    /// Sequential sum oldest → newest starting from 0.0 (NumPy's
    /// `+=` accumulation order over shifted copies).
    #[inline]
    pub fn seq_sum(&self) -> f64 {
        let (a, b) = if self.is_full() {
            (&self.buf[self.head..], &self.buf[..self.head])
        } else {
            (&self.buf[..self.filled], &self.buf[..0])
        };
        let mut s = 0.0;
        for &x in a.iter().chain(b) {
            s += x;
        }
        s
    }
    pub fn clear(&mut self) {
        self.buf.iter_mut().for_each(|v| *v = 0.0);
        self.head = 0;
        self.filled = 0;
    }
}
