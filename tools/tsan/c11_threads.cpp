// ThreadSanitizer builds only (-DULTRACORE_SANITIZE_THREAD=ON links this into every target):
// C11 thread and lock functions that call the pthread ones, so that TSan sees librdkafka's
// threads and locks.
//
// Debian's librdkafka is built with C11 threads (thrd_create, mtx_lock, cnd_wait from glibc).
// glibc implements them with internal calls that TSan's pthread interceptors never see: a
// thread started with thrd_create has no TSan state, and its first intercepted call (malloc)
// crashes inside TSan's allocator (google/sanitizers#1195; librdkafka added
// --disable-c11threads "since they pose problems with TSAN", PR #2541, but Debian's package
// does not use it). Without this file every process of the TSan pass that uses librdkafka
// (engines, the dev broker, the tests' producers) dies with SIGSEGV at start.
//
// glibc's C11 types are its pthread types (thrd_t is pthread_t; mtx_t, cnd_t and once_flag hold
// a pthread_mutex_t, pthread_cond_t and pthread_once_t of the same size), which these definitions rely on; the
// executable's definitions take precedence over libc's for librdkafka's calls.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>
#include <time.h>

static_assert(sizeof(thrd_t) == sizeof(pthread_t));
static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t));
static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t));
static_assert(sizeof(once_flag) == sizeof(pthread_once_t));

namespace {

int fromErrno(int error) {
  if (error == 0) return thrd_success;
  if (error == ENOMEM || error == EAGAIN) return thrd_nomem;
  if (error == EBUSY) return thrd_busy;
  if (error == ETIMEDOUT) return thrd_timedout;
  return thrd_error;
}

pthread_mutex_t* asMutex(mtx_t* mutex) { return reinterpret_cast<pthread_mutex_t*>(mutex); }
pthread_cond_t* asCond(cnd_t* cond) { return reinterpret_cast<pthread_cond_t*>(cond); }

struct Start {
  thrd_start_t func;
  void* arg;
};

void* runC11Thread(void* p) {
  const Start start = *static_cast<Start*>(p);
  free(p);
  return reinterpret_cast<void*>(static_cast<intptr_t>(start.func(start.arg)));
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
  auto* start = static_cast<Start*>(malloc(sizeof(Start)));
  if (start == nullptr) return thrd_nomem;
  *start = {func, arg};
  const int error = pthread_create(thread, nullptr, runC11Thread, start);
  if (error != 0) free(start);
  return fromErrno(error);
}

int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int error = pthread_join(thread, &value);
  if (error == 0 && result != nullptr) *result = static_cast<int>(reinterpret_cast<intptr_t>(value));
  return fromErrno(error);
}

int thrd_detach(thrd_t thread) { return fromErrno(pthread_detach(thread)); }

int mtx_init(mtx_t* mutex, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  const int error = pthread_mutex_init(asMutex(mutex), &attr);
  pthread_mutexattr_destroy(&attr);
  return fromErrno(error);
}
int mtx_lock(mtx_t* mutex) { return fromErrno(pthread_mutex_lock(asMutex(mutex))); }
int mtx_trylock(mtx_t* mutex) { return fromErrno(pthread_mutex_trylock(asMutex(mutex))); }
int mtx_timedlock(mtx_t* __restrict mutex, const struct timespec* __restrict until) {
  return fromErrno(pthread_mutex_timedlock(asMutex(mutex), until));
}
int mtx_unlock(mtx_t* mutex) { return fromErrno(pthread_mutex_unlock(asMutex(mutex))); }
void mtx_destroy(mtx_t* mutex) { pthread_mutex_destroy(asMutex(mutex)); }

int cnd_init(cnd_t* cond) { return fromErrno(pthread_cond_init(asCond(cond), nullptr)); }
int cnd_signal(cnd_t* cond) { return fromErrno(pthread_cond_signal(asCond(cond))); }
int cnd_broadcast(cnd_t* cond) { return fromErrno(pthread_cond_broadcast(asCond(cond))); }
int cnd_wait(cnd_t* cond, mtx_t* mutex) {
  return fromErrno(pthread_cond_wait(asCond(cond), asMutex(mutex)));
}
int cnd_timedwait(cnd_t* __restrict cond, mtx_t* __restrict mutex,
                  const struct timespec* __restrict until) {
  return fromErrno(pthread_cond_timedwait(asCond(cond), asMutex(mutex), until));
}
void cnd_destroy(cnd_t* cond) { pthread_cond_destroy(asCond(cond)); }

// librdkafka's global init (rd_kafka_new) runs once this way; without it TSan misses that the
// first caller's mtx_init happens before every later caller's mtx_lock.
void call_once(once_flag* flag, void (*func)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), func);
}

}  // extern "C"
