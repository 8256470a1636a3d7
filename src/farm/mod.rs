//! The farm as one client sees it: the host list and where it comes from (`hosts`), the slot
//! locks and backoff marks that all clients of a user share (`lock`, `backoff`, in distcc
//! 3.4's files), what our daemons said of their load (`load`), the choice of a host for
//! one job (`pick`), and the state files that monitors read (`state`); `lsdistcc`, which
//! finds the daemons that answer, the view of every host's jobs (`view`), and the daemons
//! found over mDNS for `+zeroconf` (`zeroconf`). Connecting is `net`'s.

pub mod backoff;
pub mod hosts;
pub mod load;
pub mod lock;
pub mod lsdistcc;
pub mod pick;
pub mod state;
pub mod view;
pub mod zeroconf;
