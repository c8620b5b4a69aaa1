// Locks: the index's reader-writer lock, the per-node spin lock, and advisory file locks.
#define _GNU_SOURCE
#include "ckernels.h"
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

struct hs_rwlock { pthread_rwlock_t lock; };

hs_rwlock *hs_rwlock_create(void) {
    hs_rwlock *l = (hs_rwlock *)malloc(sizeof(hs_rwlock));
    if (!l) abort();
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#ifdef __GLIBC__
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    if (pthread_rwlock_init(&l->lock, &attr) != 0) abort();
    pthread_rwlockattr_destroy(&attr);
    return l;
}
void hs_rwlock_destroy(hs_rwlock *l) { pthread_rwlock_destroy(&l->lock); free(l); }
void hs_rwlock_read_lock(hs_rwlock *l) { if (pthread_rwlock_rdlock(&l->lock) != 0) abort(); }
void hs_rwlock_read_unlock(hs_rwlock *l) { pthread_rwlock_unlock(&l->lock); }
void hs_rwlock_write_lock(hs_rwlock *l) { if (pthread_rwlock_wrlock(&l->lock) != 0) abort(); }
void hs_rwlock_write_unlock(hs_rwlock *l) { pthread_rwlock_unlock(&l->lock); }

void hs_spin_wait(uint8_t *lock) {
    for (unsigned spins = 0;; spins++) {
        if (__atomic_load_n(lock, __ATOMIC_RELAXED) == 0 && __atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE) == 0) return;
        if (spins > 64) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#endif
    }
}

int hs_lock_file(int fd) { return hs_lock_file_as(fd, 0); }

int hs_lock_file_as(int fd, int shared) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = shared ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    return fcntl(fd, F_SETLK, &lock) == 0 ? 0 : errno;
}
