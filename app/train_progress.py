"""The Train tab during a run: batch and epoch events, the throttled redraw of
the loss and accuracy plots, progress and speed. Mixed into
:class:`app.train_view.TrainView`."""

from __future__ import annotations

from .train_common import (CHECKPOINT, FINAL, TrainRun, first_conv, math, os, signals_blocked,
                            time)


class TrainProgressMixin:
    # ------------------------------------------------------------------ training events
    def _on_batch(self, ev):
        self.curves.add_loss(ev.epoch + (ev.batch + 1) / ev.batches, ev.loss)
        self._rate = ev.samples_per_s if self._rate == 0 else \
            0.9 * self._rate + 0.1 * ev.samples_per_s
        self._last_batch = ev
        self.batchDone.emit(ev)

    def _on_kernels(self, weights):
        self._pending_kernels = weights

    def _on_epoch(self, ev):
        x, train_acc = ev.epoch + 1, ev.train_accuracy * 100
        if ev.stopped:  # a partial epoch: plot it where it stopped
            last = self._last_batch
            frac = (last.batch + 1) / last.batches if last and last.epoch == ev.epoch else 0.0
            x = ev.epoch + frac
            if frac == 0:
                train_acc = float("nan")  # no batch of this epoch ran
        self.curves.add_accuracy(x, train_acc, ev.test_accuracy * 100)
        classes = self._data.classes if self._data is not None else None
        self.confusion.set_matrix(ev.confusion, classes)
        self.confusion_caption.show()
        what = "stopped during" if ev.stopped else "after"
        self.accuracy_label.setText(f"Test accuracy {ev.test_accuracy * 100:.2f} %")
        self.accuracy_detail.setText(f"{what} epoch {ev.epoch + 1}/{ev.epochs} · test loss "
                                     f"{ev.test_loss:.4f} · {ev.seconds:.1f} s, "
                                     f"{ev.samples_per_s:,.0f} img/s")
        self._refresh()
        self.epochDone.emit(ev)

    def _on_evaluated(self, model, evaluation):
        self._refresh()
        self._model_file = ""
        self._adopt(model, evaluation, "stopped" if self._run is not None
                    and self._run.control.stopped else "trained")

    def _on_finished(self, model):
        secs = time.perf_counter() - self._t_start
        self._end_training()
        acc = f"test accuracy {self._evaluation.accuracy * 100:.2f} % · " \
            if self._evaluation is not None else ""
        self.message.show_message(f"Training finished: {acc}{secs:.1f} s. The model is in "
                                  f"{os.path.join(self._run_dir, FINAL)}; use Save model… to "
                                  f"keep it elsewhere.", error=False)
        self.modelChanged.emit(model)
        self.trainingFinished.emit(model)

    def _on_stopped(self):
        self._end_training()
        ckpt = os.path.join(self._run_dir, CHECKPOINT)
        kept = (f"The last finished epoch's checkpoint is kept in {ckpt}."
                if os.path.exists(ckpt) else "No epoch had finished, so there is no checkpoint.")
        self.message.show_message(f"Training stopped. {kept}", error=False)
        if self._model_state == "stopped":
            self.modelChanged.emit(self._model)
        self.trainingStopped.emit()

    def _on_failed(self, message: str):
        self._end_training()
        self.message.show_message(f"Training failed: {message}. The previous model is kept.")
        if self._model is not None:
            conv = first_conv(self._model)
            self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
            self._show_kernel_info(self._model, conv, self._model_state)
        if self._evaluation is not None:
            self._show_evaluation(self._evaluation)
        else:
            self._clear_results("Train or load a model to see the test digits it gets wrong.")
        self.trainingFailed.emit(message)

    def _end_training(self):
        self._timer.stop()
        self._training = False
        self.curves.end()
        self._refresh()
        self.speed_label.setText(self._speed_text(final=True))
        self._update_model_info()
        with signals_blocked(self.pause_button):
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
        self._update_buttons()
        self.trainingRunning.emit(False)

    def _on_thread_done(self, run: TrainRun):
        run.wait()  # returns at once: the thread has ended
        if run in self._runs:
            self._runs.remove(run)
        if run is self._run and not self._training:
            self._run = None
        # the run (Python-owned, like its thread and worker) goes with its last reference;
        # it must not keep the dataset or the model alive meanwhile
        run.worker.model = run.worker.data = None

    def _on_pause_toggled(self, paused: bool):
        run = self._run
        self.pause_button.setText("Resume" if paused else "Pause")
        if run is None or not self._training:
            return
        if paused:
            run.pause()
            self.speed_label.setText("paused (after the current batch)")
        else:
            run.resume()
            self.speed_label.setText(self._speed_text())

    # ------------------------------------------------------------------ throttled redraw
    def _refresh(self):
        """Redraw what changed since the last refresh (timer: at most every REFRESH_MS)."""
        self.curves.redraw()
        ev = self._last_batch
        if ev is not None:
            total = self._epochs * ev.batches
            done = ev.epoch * ev.batches + ev.batch + 1
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"epoch {ev.epoch + 1}/{self._epochs} · "
                                    f"batch {ev.batch + 1}/{ev.batches}")
            if self._training and not (self._run and self._run.paused):
                self.speed_label.setText(self._speed_text())
        if self._pending_kernels is not None:
            self.kernel_grid.set_weights(self._pending_kernels)
            self._pending_kernels = None
            self._update_kernel_scale()

    def _speed_text(self, final: bool = False) -> str:
        ev = self._last_batch
        if ev is None:
            return "–"
        if final:
            secs = time.perf_counter() - self._t_start
            return f"{self._rate:,.0f} samples/s · took {secs:.1f} s"
        eta = ev.eta_s
        eta_text = "–" if not math.isfinite(eta) else \
            (f"{eta / 60:.0f} min {eta % 60:.0f} s" if eta >= 60 else f"{eta:.0f} s")
        return f"{self._rate:,.0f} samples/s · ETA {eta_text}"

    def _restore_history(self, extra: dict):
        """The curves saved with a loaded model; the progress row starts over."""
        self.curves.restore(extra)
        self._last_batch = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        self.speed_label.setText("–")
