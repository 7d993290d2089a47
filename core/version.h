/* core/version.h — the version shown in the greeting, Received: headers and --version. */
#ifndef RINGMAIL_CORE_VERSION_H
#define RINGMAIL_CORE_VERSION_H

#define RINGMAIL_VERSION "0.1.0"

#endif
