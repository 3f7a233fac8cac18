// Host signals raised by translated code: SIGSEGV (window faults), SIGFPE (#DE), SIGILL, SIGBUS.
#pragma once

namespace vmbt::bt {

class BtEngine;

/// Installs the process-wide handlers (once) and makes `engine` the one that receives faults from
/// translated code on this thread. Faults elsewhere go to the handler installed before (the
/// console's terminal restorer), or crash with the default action.
void attach_host_fault_handler(BtEngine* engine);
/// Stops routing this thread's faults to its engine.
void detach_host_fault_handler();

}  // namespace vmbt::bt
