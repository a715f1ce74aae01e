"""The Train tab's inputs: choosing and loading the data (bundled subset, IDX or
image folders, drops) and the architecture (presets, JSON files, the editor).
Mixed into :class:`app.train_view.TrainView`."""

from __future__ import annotations

from .train_common import (ARCHITECTURES, ArchitectureDialog, Dataset, ERROR_RED, Path,
                            QDialog, QFileDialog, QTableWidgetItem, Qt, Sequential,
                            _canonical, build, dataclasses, evaluate_model, first_conv,
                            json, layer_label, os, signals_blocked)


class TrainInputsMixin:
    # ------------------------------------------------------------------ data
    def showEvent(self, ev):  # noqa: N802 (Qt API)
        super().showEvent(ev)
        if self._data is None:
            self._data_timer.start()  # the bundled data, once the tab is on screen

    def _ensure_data(self) -> Dataset | None:
        if self._data is None:
            self.use_bundled_data()
        return self._data

    def _limited(self, data: Dataset) -> Dataset:
        if self.limit_train is None and self.limit_test is None:
            return data
        return dataclasses.replace(data, x_train=data.x_train[:self.limit_train],
                                   y_train=data.y_train[:self.limit_train],
                                   x_test=data.x_test[:self.limit_test],
                                   y_test=data.y_test[:self.limit_test])

    def _on_data_combo(self, index: int):
        if index == 0:
            if self._data_source != 0 or self._data is None:
                self.use_bundled_data()
            return
        title = "IDX folder (the four MNIST files)" if index == 1 else \
            "Image folder (one sub-folder per class)"
        folder = QFileDialog.getExistingDirectory(self, title)
        if not folder:
            self._select_data_item()
            return
        self.load_data_folder(folder, "idx" if index == 1 else "images")

    def _select_data_item(self):
        with signals_blocked(self.data_combo):
            self.data_combo.setCurrentIndex(self._data_source)

    def _on_data_loaded(self, token: int, data):
        if token != self._loader.latest or data is None:
            return
        self._set_data(data, self._data_requests.pop(token, 1))

    def _on_data_failed(self, token: int, message: str):
        if token != self._loader.latest:
            return
        self.message.show_message(f"{message}. The previous data is kept.")
        self.datasetFailed.emit(message)
        self._show_data_info()
        self._select_data_item()
        self._update_buttons()

    def _set_data(self, data: Dataset, source: int):
        old = self._data
        self._data = data
        self._data_source = source
        self._select_data_item()
        self._show_data_info()
        if old is None or old.input_shape != data.input_shape:
            self._set_architecture_preview()
        if self._model is not None and self._model_state != "untrained" and not self._training:
            problem = self._incompatible(self._model, data)
            if problem:
                self._evaluation = None
                self._clear_results(f"The current model does not fit this data: {problem}.")
            else:
                self._show_evaluation(evaluate_model(self._model, self._limited(data)))
        self._update_buttons()
        self.datasetChanged.emit(data)

    def _show_data_info(self):
        d = self._data
        if d is None:
            self.data_info.setText("Not loaded yet")
            return
        shape = "×".join(map(str, d.input_shape))
        self.data_info.setText(f"<b>{d.name}</b><br>{len(d.x_train):,} training · "
                               f"{len(d.x_test):,} test images<br>{shape} · "
                               f"{len(d.classes)} classes")
        self.data_info.setToolTip(", ".join(d.classes))

    @staticmethod
    def _incompatible(model: Sequential, data: Dataset) -> str:
        if model.input_shape != data.input_shape:
            return (f"the model expects images of shape {model.input_shape} but the data's "
                    f"are {data.input_shape}")
        out = model.output_shape
        if len(out) != 1:
            return f"the model's output has shape {out}; it must end with a Dense layer"
        if out[0] < len(data.classes):
            return f"the model has {out[0]} outputs but the data has {len(data.classes)} classes"
        return ""

    # drag and drop a dataset folder
    def dragEnterEvent(self, ev):  # noqa: N802 (Qt API)
        md = ev.mimeData()
        if md.hasUrls() and any(u.isLocalFile() and os.path.isdir(u.toLocalFile())
                                for u in md.urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802 (Qt API)
        folders = [u.toLocalFile() for u in ev.mimeData().urls()
                   if u.isLocalFile() and os.path.isdir(u.toLocalFile())]
        if not folders:
            return
        ev.acceptProposedAction()
        if self._training:
            self.message.show_message("Stop the training before changing the data.")
            return
        self.load_data_folder(folders[0], "auto")

    # ------------------------------------------------------------------ architecture
    def _on_arch_combo(self, index: int):
        spec = self.arch_combo.itemData(index)
        if spec is None:  # From JSON file…
            path, _ = QFileDialog.getOpenFileName(self, "Architecture (JSON)", "",
                                                  "JSON (*.json);;All files (*)")
            if not path:
                self._select_arch_item()
                return
            self.load_architecture_file(path)
            return
        self.set_architecture(spec, self.arch_combo.itemText(index))

    def load_architecture_file(self, path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                spec = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.message.show_message(f"Cannot read '{path}': {exc}. The previous "
                                      f"architecture is kept.")
            self._select_arch_item()
            return False
        if not isinstance(spec, dict):
            self.message.show_message(f"'{path}' is not an architecture (a JSON object with "
                                      f"'layers'). The previous architecture is kept.")
            self._select_arch_item()
            return False
        return self.set_architecture(spec, Path(path).stem)

    def edit_architecture(self):
        shape = self._data.input_shape if self._data is not None else (1, 28, 28)
        dlg = ArchitectureDialog(self._spec, shape, self)
        if dlg.exec() == QDialog.DialogCode.Accepted and dlg.spec is not None:
            self.set_architecture(dlg.spec, str(dlg.spec.get("name", "custom")) + " (edited)")

    def _add_custom_arch(self, spec: dict, name: str):
        """Put a non-preset architecture in the combo (one custom entry, replaced)."""
        spec = {k: v for k, v in spec.items() if k not in ("input_shape", "format", "version")}
        layers = _canonical(spec)
        preset = next((n for n, s in ARCHITECTURES.items() if _canonical(s) == layers), None)
        if preset is not None:
            self._spec = dict(ARCHITECTURES[preset])
        else:
            self._spec = spec
            n = len(ARCHITECTURES)
            with signals_blocked(self.arch_combo):
                if self.arch_combo.count() > n + 1:
                    self.arch_combo.removeItem(n)
                self.arch_combo.insertItem(n, name, spec)
        self._select_arch_item()
        self._set_architecture_preview()

    def _select_arch_item(self):
        for i in range(self.arch_combo.count()):
            s = self.arch_combo.itemData(i)
            if s is not None and _canonical(s) == _canonical(self._spec):
                with signals_blocked(self.arch_combo):
                    self.arch_combo.setCurrentIndex(i)
                return

    def _set_architecture_preview(self):
        shape = self._data.input_shape if self._data is not None else (1, 28, 28)
        try:
            model = build(dict(self._spec, input_shape=list(shape)), seed=self.seed.value())
        except ValueError as exc:
            self.arch_table.setRowCount(0)
            self.arch_total.setText(f"<span style='color:{ERROR_RED}'>{exc}</span>")
            return
        rows = model.summary()
        self.arch_table.setRowCount(len(rows))
        layers = self._spec["layers"]
        for r, row in enumerate(rows):
            cells = [str(row["index"]), layer_label(layers[r]),
                     "×".join(map(str, row["output_shape"])), f"{row['params']:,}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(row["layer"])
                align = Qt.AlignmentFlag.AlignRight if c in (0, 3) else Qt.AlignmentFlag.AlignLeft
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                self.arch_table.setItem(r, c, item)
        self.arch_total.setText(f"Total parameters: <b>{model.n_params:,}</b>")
        if self._model is None or (self._model_state == "untrained" and not self._training):
            self._model = model
            self._model_state = "untrained"
            self._evaluation = None
            conv = first_conv(model)
            self.kernel_grid.set_weights(None if conv is None else conv[1].params["weight"])
            self._show_kernel_info(model, conv, "untrained")
            self._update_model_info()
