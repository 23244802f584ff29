/*
 * bn-course-a11y: what a screen reader says about the course's sliders (issue 27).
 *
 * ipywidgets draws its sliders with noUiSlider. The handle that takes the keyboard focus
 * (role="slider") has no name: the widget's description beside it is not tied to it, so
 * a screen reader announces "slider" and a number, never which slider. This plugin ties
 * each handle to the description's label element (aria-labelledby), so its name is the
 * text on screen, and stays so when the description changes. A range slider's two
 * handles are named "<description> lower" and "<description> upper". A handle that
 * already has a name (aria-label or aria-labelledby) is left as it is.
 *
 * The value a handle announces (aria-valuetext) is noUiSlider's, which is not always the
 * one on screen: a SelectionSlider's is the option's index ("1" for batch size 4), a
 * FloatLogSlider's the exponent ("-1.3" for a learning rate of 0.05). So a one-handle
 * slider's aria-valuetext is set to the readout beside it, the value the learner sees.
 *
 * Widgets are drawn and redrawn all the time, so a MutationObserver looks at every
 * slider that appears or changes.
 *
 * How JupyterLab loads this file: the folder is a prebuilt ("federated") JupyterLab
 * extension. JupyterLab reads package.json, loads the script its jupyterlab._build.load
 * names (this file), and asks the container the script puts in window._JUPYTERLAB for
 * the module "./extension", whose default export is the plugin. Usually webpack writes
 * that container (jupyter labextension build); this plugin imports nothing from
 * JupyterLab, so the container is the few lines at the end and there is nothing to
 * build. The file sits outside a static/ folder on purpose: JupyterLab tells browsers
 * to keep files under static/ forever (their names carry a hash), and this file's name
 * stays the same when it changes. tools/jupyter_config/jupyter_config.py points
 * JupyterLab at the folder.
 */
(function () {
  'use strict';

  let labels = 0; // ids given to description labels that had none

  /** Name the unnamed handles of one ipywidgets slider (a .widget-slider element). */
  function nameHandles(slider) {
    const label = slider.querySelector(':scope > .widget-label');
    const handles = slider.querySelectorAll('.noUi-handle');
    if (!label) {
      return;
    }
    handles.forEach((handle, index) => {
      if (handle.hasAttribute('aria-labelledby') || handle.hasAttribute('aria-label')) {
        return;
      }
      label.id = label.id || `bn-course-a11y-label-${++labels}`;
      if (handles.length === 1) {
        handle.setAttribute('aria-labelledby', label.id);
      } else {
        // A range: the description, then the handle's own aria-label.
        handle.id = handle.id || `${label.id}-handle-${index}`;
        handle.setAttribute('aria-label', index === 0 ? 'lower' : 'upper');
        handle.setAttribute('aria-labelledby', `${label.id} ${handle.id}`);
      }
    });
  }

  /** A one-handle slider announces the value its readout shows. */
  function sayReadout(slider) {
    const readout = slider.querySelector(':scope > .widget-readout');
    const handles = slider.querySelectorAll('.noUi-handle');
    const text = readout ? readout.textContent.trim() : '';
    if (handles.length === 1 && text && handles[0].getAttribute('aria-valuetext') !== text) {
      handles[0].setAttribute('aria-valuetext', text);
    }
  }

  function fix(slider) {
    nameHandles(slider);
    sayReadout(slider);
  }

  /** The sliders a changed node belongs to or holds. */
  function slidersAt(node) {
    const element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
    if (!element) {
      return [];
    }
    const around = element.closest('.widget-slider');
    return around ? [around] : element.querySelectorAll('.widget-slider');
  }

  const plugin = {
    id: 'bn-course-a11y:slider-names',
    description: 'Names every ipywidgets slider handle after its description; its value is its readout.',
    autoStart: true,
    activate() {
      slidersAt(document.body).forEach(fix);
      new MutationObserver(records => {
        const sliders = new Set();
        for (const record of records) {
          // A slider drawn, a description or a readout changed: nodes were added.
          // noUiSlider set its own aria-valuetext: an attribute changed.
          const nodes = record.type === 'attributes' ? [record.target] : record.addedNodes;
          for (const node of nodes) {
            slidersAt(node).forEach(slider => sliders.add(slider));
          }
        }
        sliders.forEach(fix);
      }).observe(document.body, { childList: true, subtree: true, attributeFilter: ['aria-valuetext'] });
    }
  };

  // The module-federation container through which JupyterLab gets the plugin.
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB['bn-course-a11y'] = {
    init: () => Promise.resolve(), // shares no modules with JupyterLab
    get: module =>
      module === './extension'
        ? Promise.resolve(() => ({ __esModule: true, default: plugin }))
        : Promise.reject(new Error(`bn-course-a11y has no module ${module}`))
  };
})();
